"""Stage 5, evaluate: how close to the humans, and for whom. Per-cell metrics and their bootstrap
summaries, the reference rows (uniform, global, human-N, regression), cross-cultural summaries
(groups, gap, divergence ratio, country-mean correlation) and the culture map.

May import: every earlier stage (``core``, ``data``, ``personas``, ``llm``, ``calibrate``).
"""
