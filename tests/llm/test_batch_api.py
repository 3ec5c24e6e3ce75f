"""The Batch API route against a fake OpenAI Files/Batches server on loopback: split, upload,
create, poll with backoff, download, cache; failed and expired batches; resumption after a
crash at submit and a kill -9 during collect."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import openai
import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.llm import batch_api
from vpersona.llm.backends.openai_backend import OpenAIBackend
from vpersona.llm.batch import write_batch_requests
from vpersona.llm.cache import AnswerCache
from vpersona.llm.grid import run_grid

HERE = Path(__file__).parent
CATALOG = load_catalog()
spec = importlib.util.spec_from_file_location("fake_openai_batch", HERE / "fake_openai_batch.py")
fake_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fake_module)
FakeBatchAPI = fake_module.FakeBatchAPI
FAST = batch_api.Backoff(initial=0.01, factor=2.0, maximum=0.05, timeout=30)


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")


def grid(n_personas=3, items=("Q46", "Q57", "Q1", "Q164")):
    personas = pd.DataFrame({"persona_id": range(n_personas), "country": "JPN", "kind": "value", "multiplicity": 1,
                             "text": [f"You are respondent {i}. You trust people {i} times." for i in range(n_personas)]})
    pairs = personas[["persona_id", "country", "kind"]].merge(pd.DataFrame({"item": list(items)}), how="cross")
    return pairs.assign(multiplicity=1), personas


@pytest.fixture
def world(tmp_path, request):
    outcomes = getattr(request, "param", ("completed",))
    fake = FakeBatchAPI(outcomes=outcomes)
    client = openai.OpenAI(base_url=fake.url, api_key="sk-fake", max_retries=0)
    backend = OpenAIBackend("m", base_url=fake.url, max_retries=0)
    cache = AnswerCache(tmp_path / "cache.sqlite")
    yield fake, client, backend, cache, tmp_path / "run"
    cache.close()
    fake.close()


def submit(run, backend, cache, client, **kw):
    pairs, personas = grid()
    return batch_api.submit(run, pairs, personas, catalog=CATALOG, backend=backend, cache=cache, client=client,
                            max_requests_per_file=5, **kw)


def test_request_files_keep_the_limits_and_shards_and_the_live_bodies(tmp_path):
    pairs, personas = grid()
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")
    files = batch_api.write_requests(pairs, personas, tmp_path / "a", catalog=CATALOG, backend=backend, cache=None,
                                     max_requests_per_file=5, chunk_rows=4, shards=2)
    assert [f["requests"] for f in files] == [5, 4, 3] and [f["shard"] for f in files] == [0, 1, 0]
    one = write_batch_requests(pairs, personas, tmp_path / "ref.jsonl", catalog=CATALOG, backend=backend)
    reference = sorted(one.files[0].read_text().splitlines())
    assert sorted(line for f in files for line in Path(f["path"]).read_text().splitlines()) == reference
    small = batch_api.write_requests(pairs, personas, tmp_path / "b", catalog=CATALOG, backend=backend, cache=None,
                                     max_bytes_per_file=2 * len(reference[0]) + 200)
    assert all(f["bytes"] <= 2 * len(reference[0]) + 200 for f in small) and sum(f["requests"] for f in small) == 12


def test_submit_collect_end_to_end_then_the_grid_runs_from_the_cache(world):
    fake, client, backend, cache, run = world
    state = submit(run, backend, cache, client)
    assert [f["requests"] for f in state["rounds"][0]["files"]] == [5, 5, 2] and fake.uploads == fake.creates == 3
    slept, fake.polls = [], 6
    report = batch_api.collect(run, cache=cache, client=client, backoff=FAST, sleep=slept.append)
    assert set(report.batches.values()) == {"completed"} and report.results.stored == 12 and report.results.missing == 0
    assert slept[:3] == [0.01, 0.02, 0.04] and max(slept) == 0.05  # exponential, capped
    pairs, personas = grid()
    table = run_grid(pairs, personas, catalog=CATALOG, backend=backend, cache=cache, progress=False)
    assert table.attrs["run_stats"]["calls"] == 0 and (table["n_valid"] == 1).all()  # the fake has no chat endpoint
    assert (table["p1"] > table["p2"]).all()  # "A" is the fake's likeliest label
    again = submit(run, backend, cache, client)  # nothing left: no new round, nothing uploaded
    assert len(again["rounds"]) == 1 and fake.uploads == 3
    rows = batch_api.status(run, client)
    assert [r["status"] for r in rows] == ["completed"] * 3 and rows[0]["counts"]["completed"] == 5


@pytest.mark.parametrize("world", [("completed", "failed", "expired")], indirect=True)
def test_failed_and_expired_batches_leave_their_queries_for_the_next_round(world):
    fake, client, backend, cache, run = world
    submit(run, backend, cache, client)
    report = batch_api.collect(run, cache=cache, client=client, backoff=FAST, sleep=lambda s: None)
    assert report.batches == {"batch-1": "completed", "batch-2": "failed", "batch-3": "expired"}
    assert report.results.stored == 5 + 0 + 1 and report.results.failed["error"] == 1  # expired: half answered
    assert report.results.missing == 5 + 1
    state = batch_api.load_state(run)
    assert state["rounds"][0]["files"][1]["errors"] == ["invalid_json_line: line 1 is not valid"]
    fake.outcomes = ["completed"]
    state = submit(run, backend, cache, client)  # round 2: exactly the 6 unanswered queries
    assert len(state["rounds"]) == 2 and sum(f["requests"] for f in state["rounds"][1]["files"]) == 6
    report = batch_api.collect(run, cache=cache, client=client, backoff=FAST, sleep=lambda s: None)
    assert report.results.stored == 6 and len(cache) == 12


class CrashAfterCreate:
    """A client whose process 'dies' right after the server created a batch, before it is recorded."""

    def __init__(self, client):
        self.files, self.inner = client.files, client

    @property
    def batches(self):
        inner = self.inner.batches

        class Batches:
            def create(self, **kw):
                inner.create(**kw)
                raise KeyboardInterrupt("killed")

            def list(self, **kw):
                return inner.list(**kw)

        return Batches()


def test_submit_interrupted_after_create_does_not_create_twice(world):
    fake, client, backend, cache, run = world
    with pytest.raises(KeyboardInterrupt):
        submit(run, backend, cache, CrashAfterCreate(client))
    assert fake.creates == 1 and batch_api.load_state(run)["rounds"][0]["files"][0].get("batch_id") is None
    state = submit(run, backend, cache, client)
    assert fake.uploads == 3 and fake.creates == 3  # batch-1 was found again, not made twice
    assert [f["batch_id"] for f in state["rounds"][0]["files"]] == ["batch-1", "batch-2", "batch-3"]


def test_another_grid_in_the_same_run_folder_is_refused(world):
    fake, client, backend, cache, run = world
    submit(run, backend, cache, client)
    with pytest.raises(ValueError, match="another backend or grid"):
        submit(run, backend, cache, client, grid={"estimator": "sample"})


COLLECT_SCRIPT = textwrap.dedent('''
    import sys, openai
    from vpersona.llm import batch_api
    from vpersona.llm.cache import AnswerCache
    run, cache_path, url = sys.argv[1:4]
    client = openai.OpenAI(base_url=url, api_key="sk-fake", max_retries=0, timeout=120)
    with AnswerCache(cache_path) as cache:
        batch_api.collect(run, cache=cache, client=client, backoff=batch_api.Backoff(0.01, 2.0, 0.05))
''')


def test_collect_killed_mid_download_resumes_without_refetching(world, tmp_path):
    fake, client, backend, cache, run = world
    submit(run, backend, cache, client)
    for b in fake.batches.values():  # let all finish now, so the output file ids are known
        fake.finish(b)
    fake.slow_content = {fake.batches["batch-2"]["output_file_id"]}  # its download hangs
    script = tmp_path / "collect.py"
    script.write_text(COLLECT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, str(script), str(run), str(cache.path), fake.url], env=env)
    deadline = time.time() + 60
    while fake.downloads.get(fake.batches["batch-2"]["output_file_id"], 0) == 0 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    files = batch_api.load_state(run)["rounds"][0]["files"]
    assert files[0].get("collected") and not files[1].get("collected") and len(cache) == 5
    fake.slow_content = set()
    report = batch_api.collect(run, cache=cache, client=client, backoff=FAST, sleep=lambda s: None)
    assert len(cache) == 12 and report.results.missing == 0
    out1, out2 = fake.batches["batch-1"]["output_file_id"], fake.batches["batch-2"]["output_file_id"]
    assert fake.downloads[out1] == 1 and fake.downloads[out2] == 2  # batch 1 not fetched again
    assert not list((run / "data" / "batch").glob("*.part"))


def test_vllm_run_batch_results_are_read_with_their_request_file(tmp_path):
    pairs, personas = grid(n_personas=1)
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")
    (f,) = batch_api.write_requests(pairs, personas, tmp_path, catalog=CATALOG, backend=backend, cache=None)
    lines = [json.loads(x) for x in Path(f["path"]).read_text().splitlines()]
    # vLLM's run-batch output: "error" is a string or null, "response" has status_code and body
    out = [{"id": "vllm-1", "custom_id": x["custom_id"], "error": None,
            "response": {"status_code": 200, "request_id": "r", "body": fake_module.completion(x["body"])}}
           for x in lines[:3]]
    out.append({"id": "vllm-4", "custom_id": lines[3]["custom_id"], "response": None, "error": "engine died"})
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(o) + "\n" for o in out))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        report = batch_api.read_results(results, f["path"], cache=cache, model="m")
        assert report.stored == 3 and report.failed["error"] == 1 and batch_api.unanswered(f["path"], cache) == 1
        table = run_grid(pairs.iloc[:3], personas, catalog=CATALOG, backend=backend, cache=cache, progress=False)
    assert table.attrs["run_stats"]["calls"] == 0 and (table["n_valid"] == 1).all()


def test_the_cli_submits_collects_and_reports(world, capsys):
    from vpersona.report.cli import main
    fake, client, backend, cache, run = world
    pairs, personas = grid()
    (run / "data").mkdir(parents=True)
    pairs.to_csv(run / "data" / "pairs.csv", index=False)
    personas.to_csv(run / "data" / "personas.csv", index=False)
    common = ["--cache", str(cache.path)]
    assert main(["batch", "submit", str(run), "--model", "m", "--base-url", fake.url, "--seed", "0", *common]) == 0
    assert "-> batch-1" in capsys.readouterr().out
    assert main(["batch", "collect", str(run), "--poll", "0.01", *common]) == 0
    assert "12 answers stored" in capsys.readouterr().out
    assert main(["batch", "status", str(run), *common]) == 0 and "'completed'" in capsys.readouterr().out
    assert main(["batch", "status", str(run / "nowhere"), *common]) == 1
    assert "run `vpersona batch submit" in capsys.readouterr().err
