"""Stage 3, llm: asking the model. Prompts with single-token labels, the estimators that turn a
reply into an answer distribution, the backends (embedded llama.cpp, any OpenAI-compatible
server), the SQLite answer cache, the grid runner, the Batch JSONL route, cost estimates and the
loopback server helper.

May import: ``vpersona.core``, ``vpersona.data``, ``vpersona.personas``.
"""
