"""Downloader end to end, against a loopback server with injected faults (fault_server.py).

Each case ends in either a complete, verified file or a clear error and no file at the
target path. Expected bytes and hashes come from shared/ (and hashlib), never from our
own output. The token (HF_TOKEN=secret-xyz) must never show up in any output or file.
Runs the real binary ($HL_BIN) with small timeouts and retry delays."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fault_server import FaultServer  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
from hl_testlib import SHARED, check, finish  # noqa: E402

HL_BIN = os.environ.get("HL_BIN", "./hydralora")
TOKEN = "secret-xyz"

outputs = []  # every stdout/stderr we saw, for the token check


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def run(args, env, timeout=60):
    p = subprocess.run([HL_BIN] + args, env=env, capture_output=True, text=True, timeout=timeout)
    outputs.append(p.stdout)
    outputs.append(p.stderr)
    return p


def main():
    tmp = tempfile.mkdtemp(prefix="hl_net_")
    srv = FaultServer(SHARED).start()
    base = "http://127.0.0.1:%d" % srv.port
    env = dict(os.environ)
    for k in ("HYDRALORA_MIRROR", "HF_ENDPOINT", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME",
              "XDG_CACHE_HOME", "XDG_DATA_HOME", "HYDRALORA_CATALOG", "http_proxy", "https_proxy", "HTTP_PROXY",
              "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    env.update({
        "HOME": tmp,  # no real token file, nothing written to the real home
        "HYDRALORA_DATA": os.path.join(tmp, "data"),
        "HF_TOKEN": TOKEN,
        "HYDRALORA_HTTP_TIMEOUT": "2",
        "HYDRALORA_RETRIES": "3",
        "HYDRALORA_RETRY_BASE_MS": "50",
        "HYDRALORA_RETRY_MAX_MS": "200",
        "NO_PROXY": "*",
        "no_proxy": "*",
    })
    rel = "gsm8k/test.jsonl"
    src = os.path.join(SHARED, "datasets", rel)
    want = sha256(src)
    out_dir = os.path.join(tmp, "out")
    os.makedirs(out_dir)

    def get(fault, name, extra=(), e=env, path=rel):
        out = os.path.join(out_dir, name)
        p = run(["data", "get", "-q", "--url", "%s/f/%s/%s" % (base, fault, path), "--out", out] + list(extra), e)
        return p, out

    try:
        # 1. connection dropped mid-file, resumed with a Range request
        p, out = get("drop", "drop.jsonl", ["--sha256", want])
        check(p.returncode == 0, "drop: exit %d: %s" % (p.returncode, p.stderr))
        check(os.path.isfile(out) and sha256(out) == want, "drop: file complete and correct")
        reqs = srv.requests_for("/f/drop/")
        check(len(reqs) == 2, "drop: 2 requests, got %d" % len(reqs))
        if len(reqs) == 2:
            sent = reqs[0].get("sent", -1)
            check(reqs[0]["range"] is None and reqs[1]["range"] == "bytes=%d-" % sent,
                  "drop: second request resumes at byte %d: %r" % (sent, reqs[1]["range"]))
        check(not os.path.exists(out + ".part"), "drop: no .part left")

        # 2. 500 twice, then success
        p, out = get("e500x2", "e500.jsonl", ["--sha256", want])
        check(p.returncode == 0 and sha256(out) == want, "500x2: exit %d: %s" % (p.returncode, p.stderr))
        check(len(srv.requests_for("/f/e500x2/")) == 3, "500x2: 3 requests")

        # 3. 404: no retry, the URL is named, nothing at the target
        p, out = get("404", "nf.jsonl")
        check(p.returncode == 1 and "404" in p.stderr and "/f/404/gsm8k/test.jsonl" in p.stderr,
              "404: exit %d: %s" % (p.returncode, p.stderr))
        check(not os.path.exists(out), "404: no file at target")
        check(len(srv.requests_for("/f/404/")) == 1, "404: not retried")

        # 4. checksum mismatch: expected vs got, file deleted
        bad = "0" * 64
        p, out = get("ok", "badsum.jsonl", ["--sha256", bad])
        check(p.returncode == 1 and "checksum mismatch" in p.stderr and bad in p.stderr and want in p.stderr,
              "checksum: exit %d: %s" % (p.returncode, p.stderr))
        check(not os.path.exists(out) and not os.path.exists(out + ".part"), "checksum: no file kept")

        # 5. stalled server: the low-speed timeout fires, clear error, no file at target
        t0 = time.time()
        p, out = get("stall", "stall.jsonl", ["--retries", "1"])
        check(p.returncode == 1 and "timed out" in p.stderr and "2 attempts" in p.stderr,
              "stall: exit %d: %s" % (p.returncode, p.stderr))
        check(not os.path.exists(out), "stall: no file at target")
        print("stall case took %.1f s" % (time.time() - t0))

        # 6. server ignores Range (200 to a range request): restart cleanly
        p, out = get("norange", "norange.jsonl", ["--sha256", want])
        check(p.returncode == 0 and sha256(out) == want, "norange: exit %d: %s" % (p.returncode, p.stderr))
        reqs = srv.requests_for("/f/norange/")
        check(len(reqs) == 2 and reqs[1]["range"] is not None, "norange: second request asked for a range")

        # 7. server answers a range request with the wrong range: thrown away, restarted
        p, out = get("badrange", "badrange.jsonl", ["--sha256", want])
        check(p.returncode == 0 and sha256(out) == want, "badrange: exit %d: %s" % (p.returncode, p.stderr))

        # 8. resume from a .part left by an earlier run
        out = os.path.join(out_dir, "resume.jsonl")
        with open(out + ".part", "wb") as f:
            f.write(read(src)[:12345])
        p, _ = get("ok", "resume.jsonl", ["--sha256", want])
        check(p.returncode == 0 and sha256(out) == want, "resume: %s" % p.stderr)
        reqs = srv.requests_for("/f/ok/gsm8k/test.jsonl")
        check(reqs and reqs[-1]["range"] == "bytes=12345-", "resume: Range %r" % (reqs[-1]["range"] if reqs else None))

        # 9. 401 from the HF endpoint: the token was sent there, the message explains HF_TOKEN
        e = dict(env, HF_ENDPOINT=base)
        p, out = get("401", "gated.bin", e=e)
        check(p.returncode == 1 and "HF_TOKEN" in p.stderr and "401" in p.stderr,
              "401 (token sent): %s" % p.stderr)
        reqs = srv.requests_for("/f/401/")
        check(reqs and reqs[-1]["authorization"] == "Bearer " + TOKEN, "401: token sent to the HF endpoint host")
        check(not os.path.exists(out), "401: no file")
        # ... and without a token: the hint says how to get one
        e2 = dict(e)
        e2.pop("HF_TOKEN")
        p, out = get("401", "gated2.bin", e=e2)
        check(p.returncode == 1 and "needs a Hugging Face token" in p.stderr and "HF_TOKEN" in p.stderr,
              "401 (no token): %s" % p.stderr)
        check(srv.requests_for("/f/401/")[-1]["authorization"] is None, "no token, no header")
        # a host that is not the HF endpoint never gets the token
        p, out = get("401", "gated3.bin")
        check(srv.requests_for("/f/401/")[-1]["authorization"] is None, "token not sent to a non-HF host")
        check(p.returncode == 1 and "HF_TOKEN" in p.stderr, "401 elsewhere: %s" % p.stderr)

        # 10. redirect to another host: the Authorization header is not forwarded
        p, out = get("redirect", "redir.jsonl", ["--sha256", want], e=e)
        check(p.returncode == 0 and sha256(out) == want, "redirect: exit %d: %s" % (p.returncode, p.stderr))
        first, second = srv.requests_for("/f/redirect/"), srv.requests_for("/f/authcheck/")
        check(first and first[-1]["authorization"] == "Bearer " + TOKEN, "redirect: token on the first hop")
        check(second and second[-1]["authorization"] is None and second[-1]["host"].startswith("localhost"),
              "redirect: no token on the other host")

        # 11. Ctrl-C during a slow download keeps the .part; the next run resumes it
        out = os.path.join(out_dir, "slow.jsonl")
        proc = subprocess.Popen([HL_BIN, "data", "get", "-q", "--url", "%s/f/slow/%s" % (base, rel), "--out", out],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        so, se = proc.communicate(timeout=30)
        outputs.extend([so, se])
        check(proc.returncode == 1 and "cancelled" in se, "cancel: exit %d: %s" % (proc.returncode, se))
        part = out + ".part"
        check(not os.path.exists(out) and os.path.exists(part) and os.path.getsize(part) > 0,
              "cancel: .part kept, no target")
        kept = os.path.getsize(part) if os.path.exists(part) else 0
        p, _ = get("ok", "slow.jsonl", ["--sha256", want])
        check(p.returncode == 0 and sha256(out) == want, "after cancel: %s" % p.stderr)
        reqs = srv.requests_for("/f/ok/gsm8k/test.jsonl")
        check(reqs and reqs[-1]["range"] == "bytes=%d-" % kept, "after cancel: resumed at %d" % kept)

        # 12. catalog downloads through HYDRALORA_MIRROR, byte-identical to shared/
        e = dict(env, HYDRALORA_MIRROR=base + "/mirror")
        data = os.path.join(tmp, "data")
        for ident in ("bbh", "gsm8k", "humaneval"):
            p = run(["data", "get", ident], e, timeout=120)
            check(p.returncode == 0, "catalog get %s: %s" % (ident, p.stderr[-2000:]))
        pairs = []
        for d in ("data", "cot-prompts"):
            for name in sorted(os.listdir(os.path.join(SHARED, "datasets", "bbh", d))):
                pairs.append((os.path.join("bbh", d, name), os.path.join("bbh", d, name)))
        pairs += [("bbh/LICENSE", "bbh/LICENSE"), ("gsm8k/train.jsonl", "gsm8k/train.jsonl"),
                  ("gsm8k/test.jsonl", "gsm8k/test.jsonl"), ("gsm8k/LICENSE", "gsm8k/LICENSE"),
                  ("humaneval/HumanEval.jsonl.gz", "humaneval/HumanEval.jsonl.gz"),
                  ("humaneval/LICENSE", "humaneval/LICENSE")]
        same = [a for a, b in pairs
                if os.path.isfile(os.path.join(data, a)) and read(os.path.join(data, a)) == read(
                    os.path.join(SHARED, "datasets", b))]
        check(len(same) == len(pairs) == 60, "mirror: %d of %d files byte-identical" % (len(same), len(pairs)))
        leftovers = [f for r, _, fs in os.walk(data) for f in fs if f.endswith(".part")]
        check(not leftovers, "mirror: no .part files left: %s" % leftovers)
        n_before = len(srv.log)
        p = run(["data", "get", "gsm8k"], e)
        check(p.returncode == 0 and "3 already present" in p.stderr and len(srv.log) == n_before,
              "second get skips verified files: %s" % p.stderr)
        p = run(["data", "list"], e)
        check(p.returncode == 0 and any(l.startswith("bbh ") and " yes " in l for l in p.stdout.splitlines()),
              "list shows bbh downloaded: %s" % p.stdout)
        # a corrupted local file is detected and fetched again
        with open(os.path.join(data, "gsm8k", "LICENSE"), "ab") as f:
            f.write(b"x")
        p = run(["data", "get", "gsm8k"], e)
        check(p.returncode == 0 and read(os.path.join(data, "gsm8k", "LICENSE")) == read(
            os.path.join(SHARED, "datasets", "gsm8k", "LICENSE")), "corrupted file replaced: %s" % p.stderr)

        # 13. rows API (HF datasets-server), via a catalog given in HYDRALORA_CATALOG
        cat_path = os.path.join(tmp, "catalog.json")
        cat = {"catalog_version": 1, "entries": [
            {"id": "rows-test", "kind": "dataset", "title": "rows", "license": "MIT",
             "files": [{"name": "test.jsonl", "rows": {"endpoint": "https://datasets-server.huggingface.co/rows",
                                                       "dataset": "openai/gsm8k", "config": "main",
                                                       "split": "test"}}]},
            {"id": "rows-missing", "kind": "dataset", "title": "rows", "license": "MIT",
             "files": [{"name": "x.jsonl", "rows": {"endpoint": "https://datasets-server.huggingface.co/rows",
                                                    "dataset": "missing/dataset", "config": "c", "split": "s"}}]}]}
        with open(cat_path, "w") as f:
            json.dump(cat, f)
        srv.rows_faults = {200: "500", 400: "truncate"}
        e = dict(env, HYDRALORA_MIRROR=base + "/mirror", HYDRALORA_CATALOG=cat_path)
        p = run(["data", "get", "rows-test"], e)
        check(p.returncode == 0, "rows: %s" % p.stderr[-2000:])
        got_path = os.path.join(data, "rows-test", "test.jsonl")
        with open(src) as f:
            want_rows = [json.loads(l) for l in f if l.strip()]
        got_rows = []
        if os.path.isfile(got_path):
            with open(got_path) as f:
                got_rows = [json.loads(l) for l in f]
        check(got_rows == want_rows, "rows: %d rows equal to the source (%d)" % (len(got_rows), len(want_rows)))
        lengths = [r["path"].split("length=")[1] for r in srv.requests_for("/rows?") if "offset=400&" in r["path"]]
        check(lengths[:2] == ["100", "10"], "rows: truncated page re-asked in smaller pages: %s" % lengths)
        p = run(["data", "get", "rows-test", "--dir", os.path.join(tmp, "d2"), "--max-rows", "250"], e)
        with open(os.path.join(tmp, "d2", "rows-test", "test.jsonl")) as f:
            n = sum(1 for _ in f)
        check(p.returncode == 0 and n == 250, "rows --max-rows 250: %d" % n)
        p = run(["data", "get", "rows-missing"], e)
        check(p.returncode == 1 and "404" in p.stderr, "rows 404: %s" % p.stderr)
        bad_cat = os.path.join(tmp, "bad_catalog.json")
        with open(bad_cat, "w") as f:
            json.dump({"catalog_version": 1, "entries": [
                {"id": "escape", "kind": "dataset", "title": "t", "license": "MIT",
                 "files": [{"name": "../../escape.txt", "url": "https://raw.githubusercontent.com/x/y/z"}]}]}, f)
        p = run(["data", "get", "escape"], dict(e, HYDRALORA_CATALOG=bad_cat))
        check(p.returncode == 1 and "unsafe" in p.stderr, "unsafe catalog name refused: %s" % p.stderr)
        check(not os.path.exists(os.path.join(tmp, "escape.txt")), "nothing written outside the data dir")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        srv.close()

    try:
        # the token never reaches any output or file
        leaked = [o for o in outputs if TOKEN in o]
        check(not leaked, "token in command output: %s" % leaked[:1])
        leaked_files = []
        for root, _, files in os.walk(tmp):
            for f in files:
                if TOKEN.encode() in read(os.path.join(root, f)):
                    leaked_files.append(os.path.join(root, f))
        check(not leaked_files, "token in files: %s" % leaked_files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
