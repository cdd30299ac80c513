"""Every numeric option of every command refuses nonsense before anything runs.

Real `gpubill` subprocesses: a refused value exits 2 with one line on stderr that names the
option, no traceback, and no store, folder or server comes into being.
"""

import argparse
import os
import subprocess
import sys

import pytest

from gpubill.cli import _args

CLI_TIMEOUT_S = 60  # a command that starts serving instead of refusing fails here, not hangs

GARBAGE = ["nan", "inf", "-1", str(10**30), "abc"]   # more forms: test_converters_... below
INT_ONLY = ["1.5", "1e3"]

# (command and the arguments it needs, option, the values that must be refused)
OPTIONS = [
    (["serve"], "--port", ["65536"] + INT_ONLY),
    (["serve"], "--batch-limit", ["0", "100001"] + INT_ONLY),
    (["serve"], "--max-body", ["0", "1025"] + INT_ONLY),
    (["serve"], "--max-future", ["878401"]),
    (["serve"], "--body-timeout", ["0", "0.01", "86401"]),
    (["ingest", "events.jsonl"], "--max-future", ["878401"]),
    (["ingest", "events.jsonl"], "--chunk", ["0", str(2**20 + 1)] + INT_ONLY),
    (["events", "list"], "--limit", ["0", str(10**12 + 1)] + INT_ONLY),
    (["events", "list"], "--offset", [str(10**12 + 1)] + INT_ONLY),
    (["demo"], "--events", ["0", "100000001"] + INT_ONLY),
    (["demo"], "--seed", [str(2**64)] + INT_ONLY),
]
CASES = [(cmd, opt, v) for cmd, opt, extra in OPTIONS for v in GARBAGE + extra]


def gpubill(cwd, *args):
    env = {k: v for k, v in os.environ.items() if k != "GPUBILL_STORE"}
    p = subprocess.run([sys.executable, "-m", "gpubill", *args], cwd=cwd, capture_output=True, env=env,
                       timeout=CLI_TIMEOUT_S)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


@pytest.mark.parametrize("cmd,opt,value", CASES, ids=[f"{c[0]}{o}={v!r}" for c, o, v in CASES])
def test_a_bad_number_is_a_one_line_usage_error_and_nothing_starts(tmp_path, cmd, opt, value):
    (tmp_path / "events.jsonl").write_text("")
    rc, out, err = gpubill(tmp_path, *cmd, "--store", "s.db", "--dir", "demo", f"{opt}={value}") \
        if cmd == ["demo"] else gpubill(tmp_path, *cmd, "--store", "s.db", f"{opt}={value}")
    assert rc == 2, err
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gpubill: error: argument {opt}: must be "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]   # no store, no demo folder


ODD = ["", " 1", "1 ", "1_0", "0x10", "\u0663", "\uff11", "1\x00", "10" * 30, "\ud800", "-inf", "NaN", "1e400"]


@pytest.mark.parametrize("convert,good,bad", [
    (_args.port, {"0": 0, "65535": 65535, "+80": 80, "0080": 80}, ["-0x1", "65536", "1.0", "1e3"] + ODD),
    (_args.int_range(1, 10), {"1": 1, "10": 10}, ["0", "11", "-1"] + ODD),
    (_args.hours, {"0": 0.0, "0.5": 0.5, "1e2": 100.0, ".5": 0.5, "24.": 24.0, "-0": 0.0},
     ["-0.5", "nan", "infinity", "1e", "e1", "1.2.3", "1e99999"] + ODD),
])
def test_converters_take_plain_numbers_within_bounds_only(convert, good, bad):
    for text, value in good.items():
        assert convert(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            convert(text)


def test_other_usage_errors_are_one_line_too(tmp_path):
    for args in (["serve", "--port"], ["nosuch"], ["serve", "--no-such-option"], ["events", "nosuch"]):
        rc, out, err = gpubill(tmp_path, *args)
        assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("gpubill: error: "), (args, err)
    assert list(tmp_path.iterdir()) == []
