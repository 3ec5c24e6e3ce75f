"""The project's own files describe one environment, and package data is complete."""
import json
import re
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _name(req: str) -> str:
    return re.split(r"[\[<>=!~ ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]} | {_name(r) for r in project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = set(), set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip |= {_name(p) for p in dep["pip"] if not p.startswith("-e")}
        else:
            conda.add(_name(dep.split("=")[0]))
    have = (conda | pip) - {"python", "pip"}
    assert have == wanted, f"environment.yml and pyproject.toml differ: only in env {have - wanted}, only in pyproject {wanted - have}"


def test_environment_pins_major_minor_with_comments():
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"\s+- ([a-z0-9_\[\]-]+)==?(\S+)", line)
        if m and m.group(1) != "python":
            assert re.fullmatch(r"\d+\.\d+(\.\*)?", m.group(2)), f"not pinned to major.minor: {line}"
            assert "#" in line, f"no comment saying what it is for: {line}"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has no command block"
    first = blocks[0]
    assert "make demo" in first and "make test" in first
    assert "make test-all" in first and "make test-all" in (ROOT / ".ci" / "run").read_text()


def test_package_data_present():
    data = ROOT / "vpersona" / "resources"
    for name in ("items.yaml", "wvs7_marginals.csv.gz", "countries.csv", "iw_map_positions.csv", "README.md"):
        assert (data / name).exists(), name
    assert "10.14281/18241.20" in (data / "README.md").read_text(), "WVS citation missing"


def test_notebooks_committed_without_outputs():
    tracked = subprocess.run(["git", "ls-files", "notebooks"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for path in tracked:
        if not path.endswith(".ipynb"):
            continue
        nb = json.loads((ROOT / path).read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), f"{path} has outputs"
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path}: expected exactly one cell tagged 'parameters', found {len(tagged)}"


def test_no_respondent_level_wvs_data_tracked():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for path in tracked:
        if re.search(r"\.(sav|dta|parquet|rds|rda)$", path):
            raise AssertionError(f"binary survey file tracked: {path}")
