"""OpenAI backend throughput and client CPU per request: the SDK's default httpx client, the SDK
on its aiohttp client (the backend's default) and the old hand-written transport, in one run
against one loopback stub.

1. A stub OpenAI-compatible server (its own process) answers every chat completion at once with
   a canned logprobs completion (20 top logprobs, as vLLM returns them). It is a bare asyncio
   HTTP/1.1 keep-alive server written by hand, so that it costs far less CPU per request than the
   client under test; a FastAPI/uvicorn stub (``--stub fastapi``) costs more than the client.
2. The stub alone, driven by a raw load generator (hand-written asyncio keep-alive HTTP client,
   the same request bodies): its requests/s and its own CPU per request (from /proc). This is
   the ceiling; the backend is measured well below it, so the stub is not the bottleneck.
3. ``OpenAIBackend``, each client in a fresh process, with 64 and 256 requests in flight:
   requests/s and client CPU ms per request (``time.process_time`` of the client process:
   backend + openai SDK + HTTP client), plus the stub's CPU per request during the run. Clients:
   ``SDK + aiohttp`` (this checkout's default), ``SDK default (httpx)`` (this checkout, given the
   SDK's ``DefaultAsyncHttpxClient``: what it falls back to without aiohttp) and ``old
   transport`` (``--old-tree``: a checkout with the hand-written HTTP/1.1 transport, e.g.
   ``git archive <commit> | tar -x -C /tmp/old``; not kept in the repository).

4. ``--llama N``: N prompts against the loopback ``llama_cpp.server`` (the only served model
   here): whether one client process keeps a served model busy (its share of one core).

    python benchmarks/bench_openai.py --old-tree /tmp/old --llama 60 --json outputs/bench_openai.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from itertools import product
from pathlib import Path

ITEMS = ("Q164", "Q46", "Q57", "Q45", "Q182", "Q184", "Q209", "Q254")
COUNTRIES = ("Nigeria", "Japan", "Brazil", "Germany", "India", "Egypt", "Mexico", "Sweden")
GOD = ("very important", "rather important", "not very important", "not at all important")
TRUST = ("most people can be trusted", "you need to be very careful in dealing with people")
HERE = Path(__file__).resolve()


def personas(n: int) -> list[str]:
    texts = [f"You live in {c}. God is {g} in your life. You think {t}." for c, g, t in product(COUNTRIES, GOD, TRUST)]
    return texts[:n]


def queries(n_personas: int = 32, n_items: int = 8):
    from vpersona.data.catalog import load_catalog
    from vpersona.llm.estimators import make_estimator
    from vpersona.llm.prompts import render
    catalog, estimator = load_catalog(), make_estimator("logprobs")
    return [estimator.make_query(render(p, catalog[code], estimator="logprobs"))
            for p in personas(n_personas) for code in ITEMS[:n_items]]


# -- the stub ------------------------------------------------------------------------------------

def completion_body() -> bytes:
    top = [{"token": t, "logprob": -0.3 * (i + 1), "bytes": list(t.encode())} for i, t in
           enumerate(["A", "B", "C", "D", "E", " A", " B", "The", "I", "Answer", "a", "b", "c", "d", "1", "2", "3",
                      "4", "**", "\n"])]
    body = {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": "stub",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "A"}, "finish_reason": "length",
                         "logprobs": {"content": [{"token": "A", "logprob": -0.3, "bytes": [65], "top_logprobs": top}]}}],
            "usage": {"prompt_tokens": 90, "completion_tokens": 1, "total_tokens": 91}}
    return json.dumps(body).encode()


def serve_raw(port: int) -> None:
    """Bare asyncio HTTP/1.1 server: reads a request (headers + Content-Length body), answers."""
    chat, models = completion_body(), json.dumps({"object": "list", "data": [{"id": "stub"}]}).encode()

    def response(body: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)

    answers = {b"POST": response(chat), b"GET": response(models)}

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].lower()
                at = head.find(b"content-length:")
                length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None]) if at >= 0 else 0
                if len(self.buffer) < end + 4 + length:
                    return
                method = self.buffer[:self.buffer.find(b" ")]
                self.buffer = self.buffer[end + 4 + length:]
                self.transport.write(answers.get(method, answers[b"GET"]))

    async def main():
        server = await asyncio.get_running_loop().create_server(Protocol, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(main())


def serve_fastapi(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import Response
    app, chat = FastAPI(), completion_body()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "bench"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions():
        return Response(chat, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def stub(kind: str):
    from vpersona.llm.local_server import free_loopback_port, ready
    port = free_loopback_port()
    process = subprocess.Popen([sys.executable, str(HERE), "--serve", kind, str(port)])
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 60
        while not ready(url):
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError("the stub server did not start")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(10)


def pid_serving(url: str) -> int:
    """The process whose command line serves ``url``'s port with llama_cpp.server (from /proc)."""
    from urllib.parse import urlsplit
    port = str(urlsplit(url).port).encode()
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if b"llama_cpp.server" in argv and port in argv:
            return int(entry.name)
    raise RuntimeError(f"no llama_cpp.server process serving {url}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the raw load generator ----------------------------------------------------------------------

async def raw_load(url: str, bodies: list[bytes], connections: int) -> float:
    """Send ``bodies`` over ``connections`` keep-alive connections; return the wall seconds."""
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    pending = list(reversed(bodies))

    async def conn():
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while pending:
            body = pending.pop()
            writer.write(b"POST " + parts.path.encode() + b"/chat/completions HTTP/1.1\r\nhost: x\r\n"
                         b"content-type: application/json\r\ncontent-length: " + str(len(body)).encode()
                         + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            at = head.lower().find(b"content-length:")
            await reader.readexactly(int(head[at + 15:head.find(b"\r\n", at)]))
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(conn() for _ in range(connections)))
    return time.perf_counter() - t0


# -- the client under test -----------------------------------------------------------------------

def measure_client(url: str, concurrency: int, rounds: int, client: str = "default") -> dict:
    from vpersona.llm.backends.openai_backend import OpenAIBackend
    qs = queries() * rounds
    http_client = None
    if client == "httpx":  # the SDK's own default client, pool sized as the backend sizes its own
        import httpx2
        import openai
        http_client = openai.DefaultAsyncHttpxClient(
            limits=httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency), timeout=600)
    backend = OpenAIBackend("stub", base_url=url, max_concurrency=concurrency, timeout=600, http_client=http_client)

    async def drive(batch):
        latencies = []

        async def one(q):
            t0 = time.perf_counter()
            reply = await backend.acomplete(q)
            latencies.append(time.perf_counter() - t0)
            assert reply.top_logprobs, "no logprobs in reply"

        await asyncio.gather(*(one(q) for q in batch))  # the backend's own semaphore bounds in-flight
        return latencies

    async def run():
        await drive(qs[:concurrency])  # connections opened, first-request costs paid
        cpu0, wall0 = time.process_time(), time.perf_counter()
        latencies = await drive(qs)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        await backend.aclose()
        return latencies, cpu, wall

    latencies, cpu, wall = asyncio.run(run())
    return {"requests": len(qs), "wall_s": round(wall, 3), "req_per_s": round(len(qs) / wall, 1),
            "client_cpu_ms_per_req": round(1000 * cpu / len(qs), 3),
            "latency_p50_ms": round(1000 * statistics.median(latencies), 1)}


def client_run(tree: str, client: str, url: str, concurrency: int, rounds: int, stub_pid: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    env.pop("OPENAI_API_KEY", None)
    stub0 = cpu_seconds(stub_pid)
    out = subprocess.run([sys.executable, str(HERE), "--client", url, str(concurrency), str(rounds), client],
                         env=env, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    # stub CPU over the whole client process (warm-up included): an upper bound per request
    result["stub_cpu_ms_per_req"] = round(1000 * (cpu_seconds(stub_pid) - stub0) / (result["requests"] + concurrency), 3)
    return result


def llama_busy(n_prompts: int) -> dict:
    """Does one client keep a served model busy? ``OpenAIBackend`` (4 in flight) against the
    loopback ``llama_cpp.server`` (the embedded SmolLM2, 1 thread): requests/s, the server's and
    the client's CPU per request, and the client's share of one core."""
    from vpersona.llm.backends.openai_backend import OpenAIBackend
    from vpersona.llm.local_server import llama_server
    qs = queries()[:n_prompts + 4]
    with llama_server(threads=1) as url:
        pid = pid_serving(url)
        backend = OpenAIBackend("smollm2-135m", base_url=url, max_concurrency=4, timeout=600)

        async def run():
            await asyncio.gather(*(backend.acomplete(q) for q in qs[:4]))  # warm: connections, prompt cache
            server0, cpu0, wall0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
            await asyncio.gather(*(backend.acomplete(q) for q in qs[4:]))
            return cpu_seconds(pid) - server0, time.process_time() - cpu0, time.perf_counter() - wall0

        server, cpu, wall = asyncio.run(run())
    return {"client": "SDK + aiohttp vs llama_cpp.server", "concurrency": 4, "requests": n_prompts,
            "req_per_s": round(n_prompts / wall, 2), "client_cpu_ms_per_req": round(1000 * cpu / n_prompts, 3),
            "server_cpu_ms_per_req": round(1000 * server / n_prompts, 1),
            "client_share_of_a_core": round(cpu / wall, 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old-tree", default=None, help="checkout with the old hand-written transport")
    ap.add_argument("--new-tree", default=str(HERE.parents[1]))
    ap.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--rounds", type=int, default=8, help="times the 256-prompt set is sent per run")
    ap.add_argument("--stub", choices=["raw", "fastapi"], default="raw")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--llama", type=int, default=0, metavar="N",
                    help="also N prompts against the loopback llama_cpp.server (one client: does it keep it busy?)")
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        (serve_raw if args.serve[0] == "raw" else serve_fastapi)(int(args.serve[1]))
        return 0
    if args.client:
        print(json.dumps(measure_client(args.client[0], int(args.client[1]), int(args.client[2]), args.client[3])))
        return 0

    from vpersona.llm.backends.openai_backend import request_body
    bodies = [json.dumps(request_body("stub", q), ensure_ascii=False, separators=(",", ":")).encode()
              for q in queries()] * args.rounds
    results = []
    with stub(args.stub) as (url, pid):
        for c in args.concurrency:
            cpu0 = cpu_seconds(pid)
            wall = asyncio.run(raw_load(url, bodies, c))
            results.append({"client": "raw load generator", "concurrency": c, "requests": len(bodies),
                            "req_per_s": round(len(bodies) / wall, 1), "client_cpu_ms_per_req": None,
                            "stub_cpu_ms_per_req": round(1000 * (cpu_seconds(pid) - cpu0) / len(bodies), 3)})
            print(results[-1], flush=True)
        clients = [("SDK default (httpx)", args.new_tree, "httpx"), ("SDK + aiohttp", args.new_tree, "default"),
                   ("old transport", args.old_tree, "default")]
        for c in args.concurrency:
            for name, tree, client in clients:
                if tree:
                    r = client_run(tree, client, url, c, args.rounds, pid)
                    results.append({"client": name, "concurrency": c, **r})
                    print(results[-1], flush=True)
    if args.llama:
        os.environ.pop("OPENAI_API_KEY", None)
        results.append(llama_busy(args.llama))
        print(results[-1], flush=True)
    print(f"\nload average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    cols = ["client", "concurrency", "requests", "req_per_s", "client_cpu_ms_per_req", "stub_cpu_ms_per_req"]
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(str(r.get(c)) for c in cols))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(),
                                         "load_avg": os.getloadavg(), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
