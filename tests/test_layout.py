"""The tree is the pipeline: every module's vpersona imports point to its own stage or an earlier
one (core < data < personas < llm < calibrate < evaluate < report), never to a later stage."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vpersona"
STAGES = ["core", "data", "personas", "llm", "calibrate", "evaluate", "report"]


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "vpersona" and parts[1] in STAGES else None


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """Absolute names of every vpersona module imported anywhere in the file (functions included)."""
    module = "vpersona." + ".".join(path.relative_to(root).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [(node.lineno, f"{base}.{a.name}" if _stage(base) is None else base) for a in node.names]
    return [(line, name) for line, name in found if name.startswith("vpersona")]


def violations(root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        own = _stage("vpersona." + ".".join(path.relative_to(root).parts))
        if own is None:
            continue
        for line, name in _imports(path, root):
            other = _stage(name)
            if other is not None and STAGES.index(other) > STAGES.index(own):
                bad.append(f"{path.relative_to(root.parent)}:{line} ({own}) imports {name} ({other})")
    return bad


def test_imports_point_from_later_stages_to_earlier_ones():
    assert violations() == []


def test_every_stage_has_a_docstring_saying_what_it_may_import():
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text()))
        assert doc and "May import" in doc, stage


def test_the_check_catches_a_backward_import(tmp_path):
    fake = tmp_path / "vpersona"
    (fake / "calibrate").mkdir(parents=True)
    (fake / "calibrate" / "bad.py").write_text("def f():\n    from vpersona.evaluate.metrics import jsd\n")
    (fake / "data").mkdir()
    (fake / "data" / "rel.py").write_text("from ..report import plots\n")
    found = violations(fake)
    assert len(found) == 2 and "evaluate" in found[0] and "report" in found[1]


@pytest.mark.parametrize("stage", STAGES)
def test_stage_modules_stay_short(stage):
    for path in (PACKAGE / stage).rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 420, f"{path.name} is over 420 lines: split it"
