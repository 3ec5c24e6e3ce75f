"""Every parameter is checked before notebook 01 starts: names, values, credentials, paths; and the
command prints one line (exit 2) for these mistakes, no traceback."""
from __future__ import annotations

import re

import papermill as pm
import pytest

from vpersona.report import parameters
from vpersona.report.cli import main
from vpersona.report.config import ConfigError, load_config
from vpersona.report.paths import config_dir
from vpersona.report.run import notebooks, run


# added to runs that must stop before notebook 01: if a check were missing, notebook 01 would fail
# at once on this country (exit 1, RunFailed) instead of running the model for minutes
FAIL_FAST = ["-p", "COUNTRIES", "[XYZ]"]


def _declared():
    return {p.name: pm.inspect_notebook(str(p)) for p in notebooks()}


@pytest.mark.parametrize("name", sorted(p.stem for p in config_dir().glob("*.yaml")))
def test_every_shipped_config_passes(name, tmp_path, monkeypatch):
    data = tmp_path / "wvs.csv"
    data.write_text("B_COUNTRY_ALPHA,Q1\n")
    monkeypatch.setenv("WVS7_FILE", str(data))
    config = load_config(name)
    parameters.check_names(config["parameters"], {k: set(v) for k, v in _declared().items()})
    parameters.check_values(config["parameters"])


def test_every_notebook_parameter_has_a_rule_that_matches_its_comment():
    for nb, declared in _declared().items():
        for name, info in declared.items():
            if name in parameters.SET_BY_RUN:
                continue
            assert name in parameters.RULES, f"{nb}: parameter {name} has no rule in report/parameters.py"
            assert parameters.RULES[name](eval(info["default"])) is None, f"{nb}: default of {name} refused"
            for value in getattr(parameters.RULES[name], "allowed", ()):
                assert f'"{value}"' in info["help"] or f"{value}" in info["help"].split(), \
                    f"{nb}: {name} allows {value!r} but the parameters cell does not list it"


BAD = [("N_PERSONAS", "0"), ("N_PERSONAS", "three"), ("SPLIT", "item"), ("PERSONA_KINDS", "[values]"),
       ("ESTIMATOR", "logprob"), ("CONFIRM_COST", "yes please"), ("K_FOLDS", "1"), ("BACKEND", "opena1"),
       ("REGRESSION_FOLDS", "zones"), ("METRIC", "jsdd"), ("HUMAN_N", "[0, 25]"), ("COUNTRIES", "DEU"),
       ("REQUESTS_PER_MINUTE", "-5"), ("TARGET_ITEMS", "[]"), ("SEED", "1.5"), ("N_BOOT", "true")]


@pytest.mark.parametrize("key, value", BAD)
def test_bad_value_is_refused_before_notebook_01(tmp_path, key, value):
    lines = []
    with pytest.raises(ConfigError, match=rf"^bad parameter value: {key} = .*: expected "):
        run(load_config("smoke", {"COUNTRIES": "[XYZ]", key: value}), "bad", output_dir=tmp_path, progress=False, log=lines.append)
    assert not (tmp_path / "bad").exists() and not any("01_data_prep" in x for x in lines)


def test_unknown_parameter_suggests_the_closest(tmp_path, capsys):
    assert main(["run", "--config", "smoke", "-p", "N_PERSONA", "3", *FAIL_FAST, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"\[vpersona\] unknown parameter N_PERSONA: did you mean N_PERSONAS\? "
                        r"\(notebook parameters: .*N_PERSONAS.*\)\n", err)
    assert "Traceback" not in err and not list(tmp_path.iterdir())


def test_unknown_config_lists_the_configs(capsys):
    assert main(["run", "--config", "nonexistent"]) == 2
    err = capsys.readouterr().err
    known = ", ".join(sorted(p.stem for p in config_dir().glob("*.yaml")))
    assert err == f"[vpersona] config 'nonexistent' not found: expected a YAML path or one of {known}\n"
    assert {"demo", "paper", "qwen", "smoke"} <= set(known.split(", "))


def test_config_typo_gets_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean smoke"):
        load_config("smok")


def test_run_dir_cannot_be_set(tmp_path):
    with pytest.raises(ConfigError, match="set by `vpersona run` itself"):
        run(load_config("smoke", {"RUN_DIR": "/tmp/x", "COUNTRIES": "[XYZ]"}), "x", output_dir=tmp_path, progress=False)


@pytest.mark.parametrize("key, value", [("BASE_URL", "http://user:hunter2-pw@host/v1"),
                                        ("BASE_URL", "https://:hunter2-pw@api.example.org/v1"),
                                        ("MODEL", "sk-abcdefghijklmnopqrstuvwxyz123456"),
                                        ("OPENAI_API_KEY", "x"), ("HF_TOKEN", "x"), ("DB_PASSWORD", "x")])
def test_credentials_are_refused_and_never_echoed(tmp_path, capsys, key, value):
    assert main(["run", "--config", "smoke", "-p", key, value, *FAIL_FAST, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "belong in the environment (OPENAI_API_KEY" in err and err.count("\n") == 1
    assert "hunter2" not in err and "abcdefghijklmnop" not in err
    assert not list(tmp_path.iterdir())  # nothing ran, nothing was written


def test_credentials_arriving_through_env_are_refused(monkeypatch):
    monkeypatch.setenv("MY_URL", "http://u:hunter2-pw@host/v1")
    with pytest.raises(ConfigError, match="BASE_URL holds a URL with credentials"):
        load_config("smoke", {"BASE_URL": "env:MY_URL"})


def test_plain_base_url_passes():
    assert load_config("smoke", {"BASE_URL": "http://127.0.0.1:8000/v1"})["parameters"]["BASE_URL"] == \
        "http://127.0.0.1:8000/v1"


def test_relative_paths_are_resolved_against_the_callers_directory(tmp_path, monkeypatch):
    here = tmp_path / "where-i-typed"
    (here / "my").mkdir(parents=True)
    (here / "subset.csv").write_text("B_COUNTRY_ALPHA,Q1\n")
    monkeypatch.chdir(here)
    params = load_config("smoke", {"DATA": "subset.csv", "CACHE_PATH": "my/cache.sqlite"})["parameters"]
    assert params["DATA"] == str(here / "subset.csv")
    assert params["CACHE_PATH"] == str(here / "my" / "cache.sqlite")
    with pytest.raises(ConfigError, match=r"^parameter DATA = 'nope\.csv': no such file .*where-i-typed/nope\.csv"):
        load_config("smoke", {"DATA": "nope.csv"})


def test_models_missing_from_the_price_table_are_refused_before_notebook_01(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  gpt-test: {input: 0.5, output: 1.0}\n")
    config = load_config("smoke", {"BACKEND": "openai", "MODEL": "gpt-test", "PRICE_TABLE": str(prices),
                                   "COUNTRIES": "[XYZ]"})
    # POWER_MODEL is not set: the power notebook's default (gpt-4o-mini) is checked too
    with pytest.raises(ConfigError, match=r"^POWER_MODEL 'gpt-4o-mini' not in the price table .*it has gpt-test"):
        run(config, "p", output_dir=tmp_path, progress=False, log=lambda *_: None)
    config["parameters"]["POWER_MODEL"] = "gpt-test"
    config["parameters"]["MODEL"] = "other-model"
    with pytest.raises(ConfigError, match=r"^MODEL 'other-model' not in the price table"):
        run(config, "p", output_dir=tmp_path, progress=False, log=lambda *_: None)
    assert not (tmp_path / "p").exists()


def test_a_mapping_override_updates_the_configs_mapping_key_by_key(capsys, tmp_path):
    from vpersona.report.cli import build_parser
    from vpersona.report.config import load_config
    teach = load_config("teach")["parameters"]["SIMULATED"]
    merged = load_config("teach", {"SIMULATED": "{fidelity: 0.1}"})["parameters"]["SIMULATED"]
    assert merged == {**teach, "fidelity": 0.1} and teach["fidelity"] != 0.1
    assert load_config("teach", {"COUNTRIES": "[DEU]"})["parameters"]["COUNTRIES"] == ["DEU"]  # lists replace
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["run"].format_help().split())
    assert "a mapping updates the config's mapping key by key" in help_text
    # the run says which knobs it uses (the bad COUNTRIES stops it before any notebook)
    assert main(["run", "--config", "teach", "-p", "SIMULATED", "{fidelity: 0.1}", "-p", "COUNTRIES", "[XX]",
                 "--output-dir", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert f"SIMULATED = {merged} (the config's mapping updated by -p SIMULATED)" in out
