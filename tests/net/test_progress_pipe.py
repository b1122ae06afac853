"""Progress lines on a pipe (issue 11, item 20): a download's first line used to come a few
milliseconds after the start and claimed "258.7 MB/s  ETA 00:00" at 90%. A rate is only
shown once there is a second of progress to measure; until then "--" and "ETA --:--".

The file comes from the loopback fault server's "slow" route (2 KB every 0.2 s), so several
progress lines are printed before the end; stderr is a pipe (not a terminal)."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fault_server import FaultServer  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
from hl_testlib import SHARED, check, finish  # noqa: E402

HL_BIN = os.environ.get("HL_BIN", "./hydralora")
REL = "bbh/cot-prompts/salient_translation_error_detection.txt"  # 6 KB: 4 chunks


def main():
    tmp = tempfile.mkdtemp(prefix="hl_prog_")
    srv = FaultServer(SHARED).start()
    try:
        env = dict(os.environ, HOME=tmp, HYDRALORA_DATA=os.path.join(tmp, "data"), NO_PROXY="*", no_proxy="*")
        for k in ("HYDRALORA_MIRROR", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                  "all_proxy"):
            env.pop(k, None)
        out = os.path.join(tmp, "f.txt")
        url = "http://127.0.0.1:%d/f/slow/%s" % (srv.port, REL)
        p = subprocess.run([HL_BIN, "data", "get", "--url", url, "--out", out], env=env, capture_output=True,
                           text=True, timeout=60)
        check(p.returncode == 0, "download: exit %d: %s" % (p.returncode, p.stderr))
        with open(os.path.join(SHARED, "datasets", REL), "rb") as a, open(out, "rb") as b:
            check(a.read() == b.read(), "download: the file is complete")
        lines = [ln for ln in p.stderr.splitlines() if re.search(r"\d+\.\d%", ln)]
        check(len(lines) >= 2, "several progress lines: %r" % p.stderr)
        for ln in lines:
            pct = float(re.search(r"(\d+\.\d)%", ln).group(1))
            if pct < 100.0:
                check("ETA 00:00" not in ln, "an unfinished download must not claim ETA 00:00: %r" % ln)
            m = re.search(r"([\d.]+) (B|KB|MB|GB)/s", ln)
            if m:
                scale = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}[m.group(2)]
                # the route sends 2 KB per 0.2 s: 10 KB/s; allow ten times that
                check(float(m.group(1)) * scale < 1e5, "a rate measured over milliseconds: %r" % ln)
        first = lines[0] if lines else ""
        check("-- B/s" in first and "ETA --:--" in first, "the first line shows no rate yet: %r" % first)
    finally:
        srv.close()
    return finish()


if __name__ == "__main__":
    sys.exit(main())
