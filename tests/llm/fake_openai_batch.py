"""A fake OpenAI Files + Batches API on loopback (stdlib http.server), for fault injection only.

It stores uploaded files, runs each batch to the outcome scripted for it (``completed``,
``failed``, ``expired``) after ``polls`` retrievals, and writes output / error files in the
Batch API's format: completed lines carry a logprobs chat completion (label "A" likeliest), an
expired batch answers its first half and reports the rest as ``batch_expired`` in its error file.
``slow_content``: file ids whose download hangs (to kill a collect mid-download).
"""
from __future__ import annotations

import email.parser
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def completion(body: dict) -> dict:
    top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in (("A", -0.2), ("B", -1.9), ("C", -3.0))]
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "A"}, "finish_reason": "length",
                         "logprobs": {"content": [{"token": "A", "logprob": -0.2, "bytes": None, "top_logprobs": top}]}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 1, "total_tokens": 51}}


class FakeBatchAPI:
    def __init__(self, outcomes=("completed",), polls=2, slow_content=()):
        self.outcomes, self.polls, self.slow_content = list(outcomes), polls, set(slow_content)
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.downloads: dict[str, int] = {}
        self.uploads = self.creates = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _json(self, obj, status=200):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["content-length"]))
                with fake.lock:
                    path = urlsplit(self.path).path
                    if path.endswith("/files"):
                        return self._json(fake.upload(self.headers["content-type"], raw))
                    if path.endswith("/batches"):
                        return self._json(fake.create(json.loads(raw)))
                self._json({"error": {"message": f"no route {path}"}}, 404)

            def do_GET(self):
                url = urlsplit(self.path)
                parts = url.path.rstrip("/").split("/")
                if parts[-1] == "content":
                    file_id = parts[-2]
                    with fake.lock:
                        fake.downloads[file_id] = fake.downloads.get(file_id, 0) + 1
                    if file_id in fake.slow_content:
                        time.sleep(60)
                    data = fake.files[file_id]["content"]
                    self.send_response(200)
                    self.send_header("content-type", "application/octet-stream")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                with fake.lock:
                    if parts[-1] == "files":
                        purpose = parse_qs(url.query).get("purpose", [None])[0]
                        data = [fake.public(f) for f in fake.files.values() if purpose in (None, f["purpose"])]
                        return self._json({"object": "list", "data": data, "has_more": False})
                    if parts[-1] == "batches":
                        return self._json({"object": "list", "data": list(fake.batches.values()), "has_more": False})
                    if parts[-2] == "batches":
                        return self._json(fake.retrieve(parts[-1]))
                self._json({"error": {"message": f"no route {url.path}"}}, 404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    # -- behaviour ---------------------------------------------------------------------------------
    @staticmethod
    def public(f):
        return {k: f[k] for k in ("id", "object", "bytes", "created_at", "filename", "purpose", "status")}

    def add_file(self, content: bytes, filename: str, purpose: str) -> dict:
        f = {"id": f"file-{len(self.files) + 1}", "object": "file", "bytes": len(content), "created_at": 0,
             "filename": filename, "purpose": purpose, "status": "processed", "content": content}
        self.files[f["id"]] = f
        return f

    def upload(self, content_type: str, raw: bytes) -> dict:
        self.uploads += 1
        message = email.parser.BytesParser().parsebytes(b"content-type: " + content_type.encode() + b"\r\n\r\n" + raw)
        fields = {part.get_param("name", header="content-disposition"): part for part in message.get_payload()}
        purpose = fields["purpose"].get_payload(decode=True).decode()
        file_part = fields["file"]
        return self.public(self.add_file(file_part.get_payload(decode=True), file_part.get_filename(), purpose))

    def create(self, body: dict) -> dict:
        self.creates += 1
        n = len(self.batches)
        batch = {"id": f"batch-{n + 1}", "object": "batch", "endpoint": body["endpoint"], "errors": None,
                 "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                 "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": 0,
                 "metadata": body.get("metadata"), "request_counts": {"total": 0, "completed": 0, "failed": 0},
                 "_outcome": self.outcomes[min(n, len(self.outcomes) - 1)], "_polls": 0}
        self.batches[batch["id"]] = batch
        return self.view(batch)

    @staticmethod
    def view(batch):
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def retrieve(self, batch_id: str) -> dict:
        b = self.batches[batch_id]
        b["_polls"] += 1
        if b["status"] == "validating":
            b["status"] = "in_progress"
        elif b["status"] == "in_progress" and b["_polls"] > self.polls:
            self.finish(b)
        return self.view(b)

    def finish(self, b: dict) -> None:
        lines = [json.loads(x) for x in self.files[b["input_file_id"]]["content"].decode().splitlines() if x.strip()]
        if b["_outcome"] == "failed":
            b["status"] = "failed"
            b["errors"] = {"object": "list", "data": [{"code": "invalid_json_line", "message": "line 1 is not valid",
                                                       "line": 1, "param": None}]}
            return
        done = lines if b["_outcome"] == "completed" else lines[: len(lines) // 2]
        out = [{"id": f"r{i}", "custom_id": x["custom_id"], "error": None,
                "response": {"status_code": 200, "request_id": f"q{i}", "body": completion(x["body"])}}
               for i, x in enumerate(done)]
        errors = [{"id": f"e{i}", "custom_id": x["custom_id"], "response": None,
                   "error": {"code": "batch_expired", "message": "This request could not be executed before the "
                                                                 "completion window expired."}}
                  for i, x in enumerate(lines[len(done):])]
        if out:
            b["output_file_id"] = self.add_file("".join(json.dumps(o) + "\n" for o in out).encode(),
                                                f"{b['id']}_output.jsonl", "batch_output")["id"]
        if errors:
            b["error_file_id"] = self.add_file("".join(json.dumps(e) + "\n" for e in errors).encode(),
                                               f"{b['id']}_error.jsonl", "batch_output")["id"]
        b["status"] = "completed" if b["_outcome"] == "completed" else "expired"
        b["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(errors)}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
