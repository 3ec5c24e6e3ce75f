"""The `vpersona` command's subcommands besides `run` (covered by test_notebooks.py)."""
import warnings

from vpersona.llm.backends.base import Reply
from vpersona.llm.cache import AnswerCache
from vpersona.report.cli import main
from vpersona.data.wvs import load_wvs


def test_synthesize_writes_a_loadable_synthetic_file(tmp_path):
    out = tmp_path / "s.csv.gz"
    assert main(["synthesize", "--countries", "DEU", "NGA", "--n", "60", "--seed", "3", "--out", str(out)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        survey = load_wvs(out, not_asked="exclude")
    assert survey.countries == ["DEU", "NGA"] and len(survey.responses) == 120


def test_cache_totals(tmp_path, capsys):
    path = tmp_path / "c.sqlite"
    with AnswerCache(path) as cache:
        cache.put("k1", Reply(texts=["A"], usage={"prompt_tokens": 7, "completion_tokens": 1}), backend="x", estimator="logprobs")
    assert main(["cache", str(path)]) == 0
    assert "answers 1, prompt_tokens 7, completion_tokens 1" in capsys.readouterr().out


def test_cache_refuses_a_foreign_file(tmp_path, capsys):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database")
    assert main(["cache", str(bad)]) == 1
    assert "not an SQLite database" in capsys.readouterr().err
    assert bad.read_bytes() == b"not a database"
