"""``vpersona doctor``: checks to run before a long job, one line each, PASS / WARN / FAIL.

The engine check answers one prompt in a *child process*: a llama.cpp built with instructions the
CPU (or its hypervisor) will not execute dies with SIGILL, and that must kill the child, not the
doctor. The instruction check disassembles the installed ``libggml-cpu*.so`` with ``objdump`` and
looks for Intel AMX and AVX-512 instructions, which is how a build is shown portable on a machine
that happens not to crash.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from vpersona.report.kernel import signal_name

REBUILD = ("rebuild the engine with portable flags: `make engine install` in a checkout, or "
           "CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF "
           "-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF\" pip install --force-reinstall "
           "--no-cache-dir --no-binary llama-cpp-python llama-cpp-python")
AMX = re.compile(r"\b(ldtilecfg|sttilecfg|tileloadd\w*|tilestored|tilezero|tilerelease|tdpb[su][su]d|tdpbf16ps|tdpfp16ps)\b")
ZMM = re.compile(r"%zmm\d+")
GGML_FLAGS = re.compile(r"^(avx2|fma|f16c|avx512\w*|amx\w*|avx_vnni)$")

# the child: load the embedded model, answer one logprobs prompt, print what came out as JSON
ENGINE_CHILD = """
import json, time
t0 = time.perf_counter()
from vpersona.llm.backends.base import Query
from vpersona.llm.backends.embedded import EmbeddedBackend
b = EmbeddedBackend(n_threads=1)
r = b.complete(Query.make([{"role": "user", "content": "Answer with one letter: A or B?"}],
                          max_tokens=1, temperature=0.0, top_logprobs=5))
print(json.dumps({"model": b.identity()["model"], "top": r.texts[0], "seconds": time.perf_counter() - t0}))
"""


@dataclass
class Check:
    status: str  # PASS | WARN | FAIL
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<12} {self.detail}"


def check_engine(argv: list[str] | None = None, timeout: float = 300) -> Check:
    """Run ``argv`` (default: the embedded engine answering one prompt) in a child process."""
    argv = argv or [sys.executable, "-c", ENGINE_CHILD]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Check("FAIL", "engine", f"no answer within {timeout:.0f} s (machine overloaded, or the engine hangs)")
    sig = signal_name(proc.returncode)
    if sig:
        what = " (illegal instruction: the build uses CPU instructions this machine will not execute)" \
            if sig == "SIGILL" else ""
        return Check("FAIL", "engine", f"the engine process was killed by {sig}{what}; {REBUILD}")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return Check("FAIL", "engine", f"the engine process exited with status {proc.returncode}: {last}")
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return Check("FAIL", "engine", f"the engine process printed no answer: {proc.stdout[-200:]!r}")
    return Check("PASS", "engine", f"{out['model']} answered one prompt (top token {out['top']!r}) "
                                   f"in {time.perf_counter() - t0:.1f} s, in a child process")


def check_versions() -> Check:
    found = {"python": sys.version.split()[0]}
    for name in ("vpersona", "llama_cpp_python", "openai"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    status = "PASS" if found["llama_cpp_python"] else "WARN"
    return Check(status, "versions", ", ".join(f"{k} {v or 'not installed'}" for k, v in found.items()))


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU flags of the first processor in /proc/cpuinfo (empty if unreadable)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def check_cpu(flags: set[str] | None = None) -> Check:
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return Check("WARN", "cpu", "no CPU flags readable from /proc/cpuinfo (not checked)")
    relevant = " ".join(sorted(f for f in flags if GGML_FLAGS.match(f))) or "none"
    if "avx2" not in flags:
        return Check("FAIL", "cpu", f"no AVX2 (the portable engine build needs it); ggml-relevant flags: {relevant}")
    note = "; advertised AMX/AVX-512 are not used by the portable build" if re.search(r"amx|avx512", relevant) else ""
    return Check("PASS", "cpu", f"ggml-relevant flags: {relevant}{note}")


def scan_disassembly(lines) -> dict:
    """AMX mnemonics and whether any zmm (AVX-512) register occurs in ``objdump -d`` text lines."""
    amx, zmm = set(), False
    for line in lines:
        if "tile" in line or "tdp" in line:
            amx.update(m.group(1) for m in AMX.finditer(line))
        if not zmm and "zmm" in line:
            zmm = bool(ZMM.search(line))
    return {"amx": sorted(amx), "avx512": zmm}


def ggml_cpu_libraries() -> list[Path]:
    try:
        import llama_cpp
    except ImportError:
        return []
    root = Path(llama_cpp.__file__).parent
    unique = {}  # wheels carry libx.so, libx.so.0 and libx.so.0.N as copies: disassemble each content once
    for path in sorted(root.rglob("libggml-cpu*.so*")):
        unique.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    return sorted(unique.values())


def check_instructions(libs: list[Path] | None = None, flags: set[str] | None = None) -> Check:
    libs = ggml_cpu_libraries() if libs is None else libs
    flags = cpu_flags() if flags is None else flags
    objdump = shutil.which("objdump")
    if not libs:
        return Check("WARN", "instructions", "no libggml-cpu*.so found next to llama_cpp (not checked)")
    if not objdump:
        return Check("WARN", "instructions", "objdump not found (install binutils): not checked")
    fails, warns = [], []
    for lib in libs:
        with subprocess.Popen([objdump, "-d", "--no-show-raw-insn", str(lib)], stdout=subprocess.PIPE,
                              text=True, errors="replace") as proc:
            found = scan_disassembly(proc.stdout)
        if found["amx"]:
            fails.append(f"{lib.name} contains AMX instructions ({', '.join(found['amx'])})")
        if found["avx512"]:
            if "avx512f" in flags:
                warns.append(f"{lib.name} contains AVX-512 (zmm) instructions")
            else:
                fails.append(f"{lib.name} contains AVX-512 (zmm) instructions and this CPU has no avx512f")
    if fails:
        return Check("FAIL", "instructions", "; ".join(fails + warns) + "; a CPU or VM that advertises these may "
                     f"still refuse them (the kernel dies with SIGILL): {REBUILD}")
    if warns:
        return Check("WARN", "instructions", "; ".join(warns) + ": runs on this CPU, but the build is not portable")
    return Check("PASS", "instructions", f"no AMX and no AVX-512 instructions in {', '.join(p.name for p in libs)}")


def check_cache(path: Path) -> Check:
    from vpersona.llm.cache import AnswerCache, CacheError
    if not path.exists():
        return Check("PASS", "cache", f"{path}: no answers yet (created on first use)")
    try:
        with AnswerCache(path) as cache:
            n = cache.totals()["answers"]
    except CacheError as err:
        return Check("FAIL", "cache", f"{path}: {err}")
    return Check("PASS", "cache", f"{path}: {n} answers")


def redact_url(url: str) -> str:
    """``url`` without user name and password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "") if (parts.username or parts.password) else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc))


def check_openai(timeout: float = 5.0) -> Check:
    base = os.environ.get("OPENAI_BASE_URL")
    if not base:
        return Check("PASS", "openai", "OPENAI_BASE_URL not set (needed only for the openai backend with a server)")
    import openai
    client = openai.OpenAI(base_url=base, api_key=os.environ.get("OPENAI_API_KEY") or "none",
                           timeout=timeout, max_retries=0)
    try:
        models = [m.id for m in client.models.list()]
    except openai.APIError as err:  # connection errors, timeouts and HTTP errors alike
        return Check("FAIL", "openai", f"{redact_url(base)}/models did not answer: {type(err).__name__}")
    return Check("PASS", "openai", f"{redact_url(base)} answers, models: {', '.join(models[:5]) or 'none listed'}")


def doctor(engine_only: bool = False, cache_path: Path | None = None, log=print) -> int:
    """Print one line per check; 1 if any check failed."""
    checks = [check_engine]
    if not engine_only:
        from vpersona.report.paths import output_dir
        path = Path(cache_path) if cache_path else output_dir() / "llm_cache.sqlite"
        checks = [check_versions, check_cpu, check_instructions, lambda: check_cache(path), check_openai, check_engine]
    failed = False
    for check in checks:
        result = check()
        failed |= result.status == "FAIL"
        log(result.line())
    return 1 if failed else 0
