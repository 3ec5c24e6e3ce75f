"""A real OpenAI-compatible server on loopback: ``llama_cpp.server`` serving a GGUF (by default
the embedded SmolLM2-135M-Instruct), to try the OpenAI backend offline, and for tests and benchmarks.

    python -m vpersona.llm.local_server --port 8080     # then OPENAI_BASE_URL=http://127.0.0.1:8080/v1

:func:`server_process` starts any server command, waits until ``GET <base_url>/models`` answers,
yields, and always terminates it; :func:`llama_server` does so for ``llama_cpp.server``.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 90.0


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(base_url: str) -> bool:
    """True when ``GET <base_url>/models`` answers with a model list."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return response.status == 200 and "data" in json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, OSError, ValueError):
        return False


@contextmanager
def server_process(argv: list[str], base_url: str, *, timeout: float = START_TIMEOUT_S, env=None):
    """Run ``argv``, wait until it serves ``base_url``, yield ``base_url``, always terminate it.
    A server that exits or is not ready in time raises RuntimeError with the end of its log."""
    log = tempfile.NamedTemporaryFile(prefix="vpersona_server_", suffix=".log", delete=False)
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not ready(base_url):
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(argv[:4])} exited with code {process.returncode}:\n{_tail(log.name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(argv[:4])} not ready after {timeout:.0f} s:\n{_tail(log.name)}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        os.unlink(log.name)


def llama_server_argv(model: str | Path | None, port: int, *, threads: int = 1, n_ctx: int = 2048) -> list[str]:
    """Command line of ``llama_cpp.server`` for ``model`` (default: the embedded GGUF) on 127.0.0.1."""
    if model is None:
        from vpersona.llm.backends.embedded import default_model_path
        model = default_model_path()
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
            "--n_threads_batch", str(threads), "--verbose", "False"]


def llama_server(model: str | Path | None = None, *, port: int | None = None, threads: int = 1,
                 n_ctx: int = 2048, timeout: float = START_TIMEOUT_S):
    """Context manager: a ``llama_cpp.server`` on loopback; yields its base URL (``.../v1``).
    The server gets no OpenAI credentials from this environment."""
    port = port or free_loopback_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return server_process(llama_server_argv(model, port, threads=threads, n_ctx=n_ctx),
                          f"http://127.0.0.1:{port}/v1", timeout=timeout, env=env)


def _tail(path: str, lines: int = 30) -> str:
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vpersona.llm.local_server", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="GGUF path (default: the embedded SmolLM2-135M-Instruct)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--threads", type=int, default=max(len(os.sched_getaffinity(0)), 1))
    args = ap.parse_args(argv)
    return subprocess.call(llama_server_argv(args.model, args.port, threads=args.threads))


if __name__ == "__main__":
    sys.exit(main())
