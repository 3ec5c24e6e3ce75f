"""Stage 1, data: what a run is measured against. The item catalog, the WVS-7 loader (CSV, SPSS,
Stata; the bundled SYNTHETIC sample), the human target distributions, country facts and the
Inglehart-Welzel dimensions. ``synthetic`` is the generator of the bundled sample: a data tool,
importable, never run by a pipeline run.

May import: ``vpersona.core``.
"""
