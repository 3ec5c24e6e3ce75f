"""`vpersona doctor`: the instruction check finds planted AMX / AVX-512 instructions and passes the
installed engine; the engine check survives a child killed by SIGILL and says what to do."""
import shutil
import subprocess
import sys

import pytest

from vpersona.llm.backends.base import Reply
from vpersona.llm.cache import AnswerCache
from vpersona.report import doctor as dr
from vpersona.report.cli import main

needs_toolchain = pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("objdump")),
                                     reason="needs gcc and objdump (binutils)")
TILELOADD = ".byte 0xc4, 0xe2, 0x7b, 0x4b, 0x04, 0x16"  # tileloadd (%rsi,%rdx,1), %tmm0
VPADDD_ZMM = "vpaddd %zmm0, %zmm1, %zmm2"


def _shared_lib(tmp_path, name, asm):
    src = tmp_path / f"{name}.c"
    src.write_text(f'void never_called(void) {{ __asm__ volatile ("{asm}"); }}\n')
    lib = tmp_path / f"lib{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O0", "-o", str(lib), str(src)], check=True)
    return lib


@needs_toolchain
def test_instruction_check_flags_planted_amx(tmp_path):
    lib = _shared_lib(tmp_path, "amx", TILELOADD)
    result = dr.check_instructions([lib], flags={"avx2", "avx512f", "amx_tile"})
    assert result.status == "FAIL" and "tileloadd" in result.detail and "make engine" in result.detail


@needs_toolchain
def test_instruction_check_flags_avx512_the_cpu_lacks(tmp_path):
    lib = _shared_lib(tmp_path, "zmm", VPADDD_ZMM)
    assert dr.check_instructions([lib], flags={"avx2"}).status == "FAIL"
    assert dr.check_instructions([lib], flags={"avx2", "avx512f"}).status == "WARN"  # runs here, not portable
    plain = _shared_lib(tmp_path, "plain", "nop")
    assert dr.check_instructions([plain], flags={"avx2"}).status == "PASS"


def test_disassembly_parser_reads_objdump_lines():
    text = ["  401000:\tc4 e2 7b 4b 04 16    \ttileloaddt1 (%rsi,%rdx,1),%tmm0",
            "  401006:\t62 f1 75 48 fe d0    \tvpaddd %zmm0,%zmm1,%zmm2",
            "  40100c:\tc5 fd fe c1          \tvpaddd %ymm1,%ymm0,%ymm0   # tile_ comment"]
    assert dr.scan_disassembly(text) == {"amx": ["tileloaddt1"], "avx512": True}
    assert dr.scan_disassembly(text[2:]) == {"amx": [], "avx512": False}


@needs_toolchain
def test_installed_engine_has_no_amx_and_no_avx512():
    pytest.importorskip("llama_cpp")
    libs = dr.ggml_cpu_libraries()
    assert libs, "no libggml-cpu*.so next to llama_cpp"
    result = dr.check_instructions(libs, flags={"avx2"})
    assert result.status == "PASS", result.detail


def test_engine_check_reports_a_child_killed_by_sigill():
    child = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"]
    result = dr.check_engine(child, timeout=60)
    assert result.status == "FAIL" and "killed by SIGILL" in result.detail and "illegal instruction" in result.detail
    assert "make engine" in result.detail and "CMAKE_ARGS" in result.detail


def test_engine_check_reports_a_failing_child():
    child = [sys.executable, "-c", "import sys; sys.exit('no model here')"]
    result = dr.check_engine(child, timeout=60)
    assert result.status == "FAIL" and "status 1: no model here" in result.detail


def test_engine_answers_in_a_child():
    pytest.importorskip("llama_cpp")
    result = dr.check_engine(timeout=600)
    assert result.status == "PASS", result.detail
    assert main(["doctor", "--engine-only"]) == 0


def test_cpu_flags_and_avx2_requirement():
    flags = dr.cpu_flags("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c amx_tile avx512f\n")
    assert {"avx2", "amx_tile", "avx512f"} <= flags
    assert dr.check_cpu(flags).status == "PASS" and "amx_tile" in dr.check_cpu(flags).detail
    assert dr.check_cpu({"sse2", "avx"}).status == "FAIL"


def test_cache_check_counts_answers(tmp_path):
    path = tmp_path / "c.sqlite"
    assert "no answers yet" in dr.check_cache(path).detail and not path.exists()
    with AnswerCache(path) as cache:
        cache.put("k", Reply(texts=["A"], usage={"prompt_tokens": 3, "completion_tokens": 1}), backend="x",
                  estimator="logprobs")
    assert dr.check_cache(path).detail.endswith(": 1 answers")


def test_openai_check_never_prints_secrets(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://user:hunter2@127.0.0.1:9/v1")  # port 9: nothing listens
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-print")
    result = dr.check_openai(timeout=2)
    assert result.status == "FAIL" and "127.0.0.1:9/v1" in result.detail
    assert "hunter2" not in result.line() and "sk-do-not-print" not in result.line() and "user" not in result.detail
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert dr.check_openai().status == "PASS"
