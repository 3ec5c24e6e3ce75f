"""The Batch JSONL vpersona writes, checked against vLLM's ``run-batch`` input format.

vLLM itself (GPU build, several GB) cannot be installed here, so its request model is not
imported: the schema below is written from vLLM's documentation of the OpenAI batch file format
("Offline Inference with the OpenAI Batch file format"; ``BatchRequestInput`` / ``BatchRequestOutput``
and ``ChatCompletionRequest`` in ``vllm/entrypoints/openai/protocol.py``): one JSON object per
line with ``custom_id``, ``method``, ``url`` (``/v1/chat/completions``) and ``body``, a chat
completion request whose sampling fields have the types below. vLLM accepts unknown body
fields with a warning and ignores them, so vpersona must send none it needs honoured beyond these.
"""
import json

import jsonschema
import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.llm import batch_api
from vpersona.llm.backends.openai_backend import OpenAIBackend

MESSAGE = {"type": "object", "required": ["role", "content"], "additionalProperties": False,
           "properties": {"role": {"enum": ["system", "user", "assistant"]}, "content": {"type": "string"}}}
VLLM_CHAT_BODY = {
    "type": "object", "required": ["model", "messages"], "additionalProperties": False,
    "properties": {
        "model": {"type": "string"}, "messages": {"type": "array", "items": MESSAGE, "minItems": 1},
        "max_tokens": {"type": "integer", "minimum": 1}, "max_completion_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0}, "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "n": {"type": "integer", "minimum": 1}, "seed": {"type": "integer"},
        "logprobs": {"type": "boolean"}, "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "top_k": {"type": "integer"}, "min_p": {"type": "number"}, "repetition_penalty": {"type": "number"}}}
VLLM_BATCH_LINE = {
    "type": "object", "required": ["custom_id", "method", "url", "body"], "additionalProperties": False,
    "properties": {"custom_id": {"type": "string", "minLength": 1}, "method": {"const": "POST"},
                   "url": {"const": "/v1/chat/completions"}, "body": VLLM_CHAT_BODY}}


@pytest.mark.parametrize("estimator,params", [("logprobs", {}), ("sample", {"n": 5}), ("verbalized", {})])
def test_request_lines_match_vllms_batch_input_format(tmp_path, estimator, params):
    personas = pd.DataFrame({"persona_id": [0, 1], "country": "PER", "kind": ["value", "none"], "multiplicity": 1,
                             "text": ["You live in Peru. God is very important in your life.", ""]})
    pairs = personas[["persona_id", "country", "kind"]].merge(pd.DataFrame({"item": ["Q46", "Q164"]}), how="cross")
    backend = OpenAIBackend("Qwen/Qwen2.5-7B-Instruct", base_url="http://127.0.0.1:8000/v1",
                            extra_body={"top_k": 0, "min_p": 0.0})
    files = batch_api.write_requests(pairs, personas, tmp_path, catalog=load_catalog(), backend=backend, cache=None,
                                     estimator=estimator, shards=2, replicates=2 if estimator == "sample" else 1,
                                     **params)
    lines = [json.loads(x) for f in files for x in open(f["path"], encoding="utf-8")]
    assert len(lines) == len(pairs) * (2 if estimator == "sample" else 1)
    for line in lines:
        jsonschema.validate(line, VLLM_BATCH_LINE)
        body = line["body"]
        if body.get("top_logprobs"):
            assert body["logprobs"] is True  # vLLM returns no logprobs without it
    assert len({x["custom_id"] for x in lines}) == len(lines)


def test_the_schema_rejects_what_vllm_would_not_honour():
    line = {"custom_id": "k", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 50}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(line, VLLM_BATCH_LINE)  # above vLLM's default --max-logprobs 20
    line["body"] = {"model": "m", "messages": [{"role": "user", "content": "x"}], "logit_bias_typo": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(line, VLLM_BATCH_LINE)
