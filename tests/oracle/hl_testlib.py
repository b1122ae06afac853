"""Helpers shared by the Python tests (tests/oracle, tests/net): where shared/, the build dir
and the hydralora binary are, and the check()/finish() tally that prints "N passed, N failed".

Import after putting this folder on sys.path:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
    from hl_testlib import BIN, SHARED, check, finish
ctest sets HL_SHARED, HL_BUILD_DIR and HL_BIN; the defaults are for running a test by hand
from the build directory."""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("HL_SHARED", os.path.join(_HERE, "..", "..", "..", "shared"))
BUILD = os.environ.get("HL_BUILD_DIR", ".")
BIN = os.environ.get("HL_BIN") or os.path.join(BUILD, "hydralora")

_tally = {"passed": 0, "failed": 0}


def check(cond, msg):
    """Count one assertion; print the message of a failed one."""
    if cond:
        _tally["passed"] += 1
    else:
        _tally["failed"] += 1
        print("FAIL:", msg, flush=True)


def finish():
    """Print the summary line CI reads; returns the exit status (1 if anything failed)."""
    print("%d passed, %d failed" % (_tally["passed"], _tally["failed"]), flush=True)
    return 1 if _tally["failed"] else 0
