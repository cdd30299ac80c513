"""The real commands: `gpubill ingest --contracts`, `gpubill alerts`, and `gpubill serve --contracts`
delivering to a real receiver in the background."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

from .helpers import job, write_contracts
from .test_webhooks import SECRET, SECRET_ENV, Receiver


def gpubill(*args, env=None, check=True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpubill", *args], capture_output=True, text=True, check=check,
                          env={**os.environ, **(env or {})})


def test_ingest_with_contracts_fires_each_threshold_once(tmp_path):
    contracts, db = write_contracts(tmp_path / "c"), str(tmp_path / "s.db")
    for step, events in enumerate(([job(0, 10), job(1, 10)], [job(2, 10), job(3, 10)])):
        f = tmp_path / f"step{step}.jsonl"
        f.write_text("".join(json.dumps(e) + "\n" for e in events))
        out = gpubill("ingest", str(f), "--store", db, "--contracts", str(contracts))
        assert out.stderr == ["gpubill: 1 alerts fired (gpubill alerts)\n",
                              "gpubill: 2 alerts fired (gpubill alerts)\n"][step]
    out = gpubill("ingest", str(f), "--store", db, "--contracts", str(contracts))  # duplicates: nothing new
    assert out.stderr == ""
    listed = json.loads(gpubill("alerts", "--store", db, "--format", "json").stdout)
    assert [(a["threshold"], a["amount"], a["limit"], a["percent"]) for a in listed] == [
        ("50%", "558.40", "500", "55.84"), ("80%", "1116.80", "800", "111.68"),
        ("100%", "1116.80", "1000", "111.68")]
    table = gpubill("alerts", "list", "--store", db, "--customer", "budget-co", "--period", "2026-10").stdout
    assert "1116.80 USD" in table and table.count("budget-co") == 3
    checked = gpubill("alerts", "check", "--store", db, "--contracts", str(contracts)).stdout
    assert checked.startswith("0 new events") and checked.rstrip().endswith("0 alerts fired")


def test_ingest_with_broken_contracts_stores_the_events_and_says_alerts_were_not_checked(tmp_path):
    contracts, db = write_contracts(tmp_path / "c"), str(tmp_path / "s.db")
    (contracts / "broken.bill").write_text("contract broken {\n  plan nowhere\n}\n")
    f = tmp_path / "e.jsonl"
    f.write_text(json.dumps(job(0, 10)) + "\n")
    out = gpubill("ingest", str(f), "--store", db, "--contracts", str(contracts))
    assert out.stdout.endswith("1 ingested, 0 duplicate, 0 conflict, 0 rejected\n")
    assert out.stderr.startswith("gpubill: warning: alerts not checked (the events are stored): ")


def test_webhook_commands_need_an_admin_and_one_line_errors(tmp_path):
    db = str(tmp_path / "s.db")
    gpubill("users", "add", "root", "--role", "admin", "--store", db)
    gpubill("users", "add", "vic", "--role", "viewer", "--store", db, "--as", "root")
    refused = gpubill("alerts", "webhook", "add", "http://127.0.0.1:1/h", "--secret-env", "S", "--store", db,
                      "--as", "vic", check=False)
    assert refused.returncode == 6 and refused.stderr.count("\n") == 1 and "admin" in refused.stderr
    bad = gpubill("alerts", "webhook", "add", "ftp://x/h", "--secret-env", "S", "--store", db, "--as", "root",
                  check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("gpubill: error: webhook URL 'ftp://x/h'")
    gpubill("alerts", "webhook", "add", "http://127.0.0.1:1/h", "--secret-env", "S", "--store", db, "--as", "root")
    listed = json.loads(gpubill("alerts", "webhook", "list", "--store", db, "--format", "json").stdout)
    assert [(w["url"], w["secret_env"]) for w in listed] == [("http://127.0.0.1:1/h", "S")]
    log = [json.loads(line) for line in gpubill("audit", "log", "--store", db, "--format", "json").stdout.splitlines()]
    assert [e["action"] for e in log if e["action"].startswith("webhook")] == ["webhook.added"]


def test_serve_with_contracts_checks_and_delivers_in_the_background(tmp_path):
    contracts, db = write_contracts(tmp_path / "c"), str(tmp_path / "s.db")
    receiver = Receiver([])
    env = {SECRET_ENV: SECRET, "PYTHONUNBUFFERED": "1"}
    try:
        key = gpubill("keys", "create", "--name", "agent", "--role", "writer", "--store", db).stdout.strip()
        gpubill("alerts", "webhook", "add", receiver.url, "--secret-env", SECRET_ENV, "--store", db)
        proc = subprocess.Popen([sys.executable, "-m", "gpubill", "serve", "--store", db, "--port", "0",
                                 "--contracts", str(contracts), "--alerts-interval", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
        try:
            line = proc.stdout.readline().decode()
            assert line.startswith("listening on "), proc.stderr.read().decode()
            url = line.split()[-1]
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                for i in range(4):
                    r = http.post("/api/v1/events/batch", json={"events": [job(i, 10)]})
                    assert r.status_code == 200
            deadline = time.monotonic() + 60
            while len(receiver.accepted) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        assert sorted(b["object"]["threshold"] for b in receiver.accepted.values()) == ["100%", "50%", "80%"]
        assert all(r["signed"] for r in receiver.requests)
        assert err.decode() == ""
        listed = json.loads(gpubill("alerts", "--store", db, "--format", "json").stdout)
        assert [[d["status"] for d in a["webhooks"]] for a in listed] == [["delivered"]] * 3
        assert {a["period"] for a in listed} == {"2026-10-01..2026-10-31"}
    finally:
        receiver.close()


def test_two_checks_at_once_fire_each_threshold_once(tmp_path):
    contracts, db = write_contracts(tmp_path / "c"), str(tmp_path / "s.db")
    f = tmp_path / "e.jsonl"
    f.write_text("".join(json.dumps(job(i, 10)) + "\n" for i in range(4)))
    gpubill("ingest", str(f), "--store", db)
    procs = [subprocess.Popen([sys.executable, "-m", "gpubill", "alerts", "check", "--store", db, "--contracts",
                               str(contracts), "--format", "json"], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    fired = [json.loads(p.communicate(timeout=120)[0])["fired"] for p in procs]
    assert sorted(a["threshold"] for f in fired for a in f) == ["100%", "50%", "80%"]
    listed = json.loads(gpubill("alerts", "--store", db, "--format", "json").stdout)
    assert [a["threshold"] for a in listed] == ["50%", "80%", "100%"]
    log = [json.loads(line) for line in gpubill("audit", "log", "--store", db, "--format", "json").stdout.splitlines()]
    assert [e["payload"]["threshold"] for e in log if e["action"] == "alert.fired"] == ["50%", "80%", "100%"]


def test_usage_errors_are_one_line(tmp_path):
    db = str(tmp_path / "s.db")
    gpubill("alerts", "webhook", "list", "--store", db, check=False)  # missing store: refused, not created
    assert not (tmp_path / "s.db").exists()
    f = tmp_path / "e.jsonl"
    f.write_text(json.dumps(job(0, 1)) + "\n")
    gpubill("ingest", str(f), "--store", db)
    for args, code, start in [(("check",), 2, "gpubill: error: check needs --contracts DIR"),
                              (("list", "extra"), 2, "gpubill: error: list takes no argument 'extra'"),
                              (("webhook", "add", "http://h/x"), 2, "gpubill: error: webhook add needs --secret-env"),
                              (("webhook", "remove", "http://h/x"), 1, "gpubill: error: no webhook 'http://h/x'"),
                              (("check", "--contracts", str(tmp_path / "none")), 3, "gpubill: error: ")]:
        out = gpubill("alerts", *args, "--store", db, check=False)
        assert (out.returncode, out.stderr.count("\n")) == (code, 1) and out.stderr.startswith(start), out.stderr
