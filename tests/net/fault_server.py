"""A loopback HTTP server for the downloader tests: serves shared/datasets (and the
stories260K model) and injects faults chosen by the URL path.

Routes (all on 127.0.0.1, ephemeral port):
  /mirror/<host>/<path>      HYDRALORA_MIRROR layout: the catalog URLs' <host>/<path> mapped
                             onto the shared files (pinned commits only), plus a fake
                             datasets-server /rows endpoint that pages over gsm8k/test.jsonl.
  /f/<fault>/<rel>           <rel> under shared/datasets, with <fault> one of:
      ok        plain file, honours "Range: bytes=N-" (206)
      drop      first request: full Content-Length, half the body, then the connection is cut
      e500x2    500 for the first two requests, then ok
      404       not found
      stall     headers and 1000 bytes, then silence (until the server stops)
      norange   first request cut like drop; later requests ignore Range (200 + whole file)
      badrange  first request cut like drop; later requests answer 206 with a Content-Range
                that starts at 0 whatever was asked (until a request without Range)
      401       401 with a JSON body
      redirect  302 to the same file under /f/authcheck/ on http://localhost:<port>
      authcheck refuses (400) any request that carries an Authorization header
      slow      sends the file 2 KB at a time, 0.2 s apart
Every request is logged (path, Range header, Authorization header) in server.log.
Only the Python standard library is used.
"""
import json
import os
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BBH_COMMIT = "9ee07bd481feebf959a6b59d61ea57bdcf30964d"
GSM_COMMIT = "3101c7d5072418e28b9008a6636bde82a006892c"
HE_COMMIT = "6d43fb980f9fee3c892a914eda09951f772ad10d"
TL_COMMIT = "0bd21da7698eaf29a0d7de3992de8a46ef624add"


def mirror_path(shared, rel):
    """Map '<host>/<path>' of a catalog URL to a file in shared/, or None."""
    parts = rel.split("/")
    ds = os.path.join(shared, "datasets")
    if parts[:1] == ["raw.githubusercontent.com"]:
        repo, rest = "/".join(parts[1:3]), parts[3:]
        if repo == "suzgunmirac/BIG-Bench-Hard" and rest[:1] == [BBH_COMMIT]:
            rest = rest[1:]
            if len(rest) == 2 and rest[0] == "bbh" and rest[1].endswith(".json"):
                return os.path.join(ds, "bbh", "data", rest[1])
            if len(rest) == 2 and rest[0] == "cot-prompts":
                return os.path.join(ds, "bbh", "cot-prompts", rest[1])
            if rest == ["LICENSE"]:
                return os.path.join(ds, "bbh", "LICENSE")
        if repo == "openai/grade-school-math" and rest[:1] == [GSM_COMMIT]:
            rest = rest[1:]
            if len(rest) == 3 and rest[:2] == ["grade_school_math", "data"]:
                return os.path.join(ds, "gsm8k", rest[2])
            if rest == ["LICENSE"]:
                return os.path.join(ds, "gsm8k", "LICENSE")
        if repo == "openai/human-eval" and rest[:1] == [HE_COMMIT]:
            rest = rest[1:]
            if rest == ["data", "HumanEval.jsonl.gz"]:
                return os.path.join(ds, "humaneval", "HumanEval.jsonl.gz")
            if rest == ["LICENSE"]:
                return os.path.join(ds, "humaneval", "LICENSE")
    if parts[:4] == ["huggingface.co", "karpathy", "tinyllamas", "resolve"] and parts[4:5] == [TL_COMMIT]:
        if len(parts) == 7 and parts[5] == "stories260K":
            return os.path.join(shared, "models", "stories260K", parts[6])
    return None


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, shared):
        super().__init__(("127.0.0.1", 0), Handler)
        self.shared = shared
        self.log = []
        self.counts = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.rows_faults = {}  # offset -> "500" (once) or "truncate" (while length > 10)
        with open(os.path.join(shared, "datasets", "gsm8k", "test.jsonl"), "rb") as f:
            self.rows = [json.loads(line) for line in f if line.strip()]

    @property
    def port(self):
        return self.server_address[1]

    def start(self):
        t = threading.Thread(target=self.serve_forever, daemon=True)
        t.start()
        return self

    def close(self):
        self.stop.set()
        self.shutdown()
        self.server_close()

    def handle_error(self, request, client_address):
        # clients that give up (timeouts, Ctrl-C tests) reset connections: not an error here
        import sys
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError, TimeoutError)):
            super().handle_error(request, client_address)

    def requests_for(self, needle):
        with self.lock:
            return [r for r in self.log if needle in r["path"]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output clean
        pass

    # -- helpers --------------------------------------------------------------------
    def _count(self, key):
        with self.server.lock:
            n = self.server.counts.get(key, 0) + 1
            self.server.counts[key] = n
            return n

    def _send(self, code, body=b"", headers=None, ctype="application/octet-stream"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _range_start(self):
        r = self.headers.get("Range")
        if not r or not r.startswith("bytes=") or not r.endswith("-"):
            return None
        try:
            return int(r[len("bytes="):-1])
        except ValueError:
            return None

    def _serve_bytes(self, data, honour_range=True):
        start = self._range_start() if honour_range else None
        if start is None:
            self._send(200, data)
        elif start >= len(data):
            self._send(416, b"", {"Content-Range": "bytes */%d" % len(data)})
        else:
            self._send(206, data[start:], {"Content-Range": "bytes %d-%d/%d" % (start, len(data) - 1, len(data))})

    def _cut(self, data, entry):
        """Full Content-Length, half the body, then close the connection."""
        half = len(data) // 2
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:half])
        self.wfile.flush()
        entry["sent"] = half
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- routes ---------------------------------------------------------------------
    def do_GET(self):
        entry = {
            "path": self.path,
            "range": self.headers.get("Range"),
            "authorization": self.headers.get("Authorization"),
            "host": self.headers.get("Host"),
        }
        with self.server.lock:
            self.server.log.append(entry)
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        if path.startswith("/mirror/"):
            return self._mirror(path[len("/mirror/"):], url.query, entry)
        if path.startswith("/f/"):
            fault, _, rel = path[len("/f/"):].partition("/")
            return self._fault(fault, rel, entry)
        self._send(404, b"no such route\n", ctype="text/plain")

    def _mirror(self, rel, query, entry):
        if rel == "datasets-server.huggingface.co/rows":
            return self._rows(urllib.parse.parse_qs(query), entry)
        p = mirror_path(self.server.shared, rel)
        if not p or not os.path.isfile(p):
            return self._send(404, b'{"error": "not found"}', ctype="application/json")
        with open(p, "rb") as f:
            self._serve_bytes(f.read())

    def _rows(self, q, entry):
        """A stand-in for https://datasets-server.huggingface.co/rows over gsm8k test."""
        try:
            offset, length = int(q["offset"][0]), int(q["length"][0])
            dataset = q["dataset"][0]
        except (KeyError, ValueError):
            return self._send(422, b'{"error": "bad parameters"}', ctype="application/json")
        if dataset == "missing/dataset":
            return self._send(404, b'{"error": "The dataset does not exist."}', ctype="application/json")
        if length > 100:
            return self._send(422, b'{"error": "length must be <= 100"}', ctype="application/json")
        fault = self.server.rows_faults.get(offset)
        if fault == "500" and self._count("rows500-%d" % offset) == 1:
            return self._send(500, b'{"error": "internal"}', ctype="application/json")
        rows = self.server.rows[offset:offset + length]
        out = []
        for i, r in enumerate(rows):
            truncated = []
            if fault == "truncate" and length > 10 and i == 0:
                r = dict(r, question=r["question"][:20])
                truncated = ["question"]
            out.append({"row_idx": offset + i, "row": r, "truncated_cells": truncated})
        body = json.dumps({"features": [], "rows": out, "num_rows_total": len(self.server.rows),
                           "num_rows_per_page": 100, "partial": False}).encode()
        self._send(200, body, ctype="application/json")

    def _fault(self, fault, rel, entry):
        p = os.path.join(self.server.shared, "datasets", rel)
        if ".." in rel.split("/") or not os.path.isfile(p):
            return self._send(404, b"no such file\n", ctype="text/plain")
        with open(p, "rb") as f:
            data = f.read()
        n = self._count(self.path)
        if fault == "ok":
            return self._serve_bytes(data)
        if fault == "drop":
            return self._cut(data, entry) if n == 1 else self._serve_bytes(data)
        if fault == "e500x2":
            if n <= 2:
                return self._send(500, b"temporary failure\n", ctype="text/plain")
            return self._serve_bytes(data)
        if fault == "404":
            return self._send(404, b"Not Found\n", ctype="text/plain")
        if fault == "stall":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:1000])
            self.wfile.flush()
            self.server.stop.wait(60)
            self.close_connection = True
            return
        if fault == "norange":
            return self._cut(data, entry) if n == 1 else self._serve_bytes(data, honour_range=False)
        if fault == "badrange":
            if n == 1:
                return self._cut(data, entry)
            if self._range_start() is not None:
                return self._send(206, data, {"Content-Range": "bytes 0-%d/%d" % (len(data) - 1, len(data))})
            return self._serve_bytes(data)
        if fault == "401":
            return self._send(401, b'{"error": "Access to model x/y is restricted. You must be authenticated."}',
                              ctype="application/json")
        if fault == "redirect":
            target = "http://localhost:%d/f/authcheck/%s" % (self.server.port, rel)
            return self._send(302, b"", {"Location": target})
        if fault == "authcheck":
            if self.headers.get("Authorization"):
                return self._send(400, b"Authorization header forwarded to another host!\n", ctype="text/plain")
            return self._serve_bytes(data)
        if fault == "slow":
            start = self._range_start() or 0
            code = 206 if start else 200
            self.send_response(code)
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
            self.end_headers()
            for i in range(start, len(data), 2048):
                if self.server.stop.is_set():
                    break
                try:
                    self.wfile.write(data[i:i + 2048])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)
            return
        self._send(400, b"unknown fault\n", ctype="text/plain")
