"""`gpubill import lago` as a real subprocess: exit codes, all-or-nothing writes, diagnostics."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from lago_objects import FIXTURES, charge, metric, plan, write


def gpubill(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gpubill", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def fixture_paths(tmp_path):
    d = tmp_path / "lago"
    shutil.copytree(FIXTURES, d)
    return sorted(str(p) for p in d.glob("*.json"))


def test_clean_import_writes_files_that_check(tmp_path):
    out = tmp_path / "billing"
    r = gpubill("import", "lago", *fixture_paths(tmp_path), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert sorted(os.listdir(out)) == ["contracts.bill", "entities.bill", "metrics.bill", "plans.bill"]
    assert r.stdout.splitlines() == [str(out / n) for n in ("metrics.bill", "plans.bill", "entities.bill",
                                                           "contracts.bill")]
    check = gpubill("check", str(out))
    assert check.returncode == 0 and check.stdout == "" and check.stderr == ""


def test_unsupported_exits_1_with_the_diagnostic_and_writes_nothing(tmp_path):
    bad = write(tmp_path, "plans.json", {"plans": [plan(charges=[charge("calls"), charge("calls", "custom", n=2)])]})
    good = write(tmp_path, "metric.json", {"billable_metric": metric("calls", "count_agg")})
    out = tmp_path / "billing"
    r = gpubill("import", "lago", good, bad, "--out", str(out))
    assert r.returncode == 1
    assert not out.exists()
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"{bad}:")
    line, col = first.split(":")[1:3]
    assert 'error[lago-unsupported]: plans[0].charges[1].charge_model: charge model "custom" is not supported' in first
    src = open(bad).read().splitlines()[int(line) - 1]
    assert src[int(col) - 1:].startswith('"custom"')
    assert "= hint:" in r.stderr and "nothing was written" in r.stderr
    assert "Traceback" not in r.stderr


def test_invalid_json_is_one_line_naming_file_line_col(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{\n  "plan": {\n    "code": "pro",\n  }\n}\n')
    out = tmp_path / "billing"
    r = gpubill("import", "lago", str(p), "--out", str(out))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"{p}:4:3: error[lago-invalid-json]: invalid JSON:")
    assert not out.exists()


def test_unreadable_file_exits_3(tmp_path):
    r = gpubill("import", "lago", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o"))
    assert r.returncode == 3
    assert "missing.json" in r.stderr and len(r.stderr.splitlines()) == 1


def test_existing_output_needs_force(tmp_path):
    paths = fixture_paths(tmp_path)
    out = tmp_path / "billing"
    assert gpubill("import", "lago", *paths, "--out", str(out)).returncode == 0
    (out / "plans.bill").write_text("# edited\n")
    r = gpubill("import", "lago", *paths, "--out", str(out))
    assert r.returncode == 1 and "--force" in r.stderr
    assert (out / "plans.bill").read_text() == "# edited\n"
    assert gpubill("import", "lago", *paths, "--out", str(out), "--force").returncode == 0
    assert "plan gpu_cloud_pro {" in (out / "plans.bill").read_text()


def test_warnings_are_printed_and_do_not_fail(tmp_path):
    ch = charge("calls", properties={"amount": "1", "presentation_group_keys": ["region"]})
    paths = [write(tmp_path, "m.json", {"billable_metric": metric("calls", "count_agg")}),
             write(tmp_path, "p.json", {"plan": plan(charges=[ch])})]
    r = gpubill("import", "lago", *paths, "--out", str(tmp_path / "o"))
    assert r.returncode == 0
    assert "warning[lago-ignored]: plan.charges[0].properties.presentation_group_keys" in r.stderr


def test_json_diagnostics(tmp_path):
    import json

    p = write(tmp_path, "p.json", {"plan": plan(trial_period=7)})
    r = gpubill("import", "lago", p, "--out", str(tmp_path / "o"), "--format", "json")
    assert r.returncode == 1
    [d] = json.loads(r.stderr)
    assert d["rule"] == "lago-unsupported" and d["path"] == p and d["line"] > 1


def test_usage_errors_exit_2(tmp_path):
    assert gpubill("import", "lago", "x.json").returncode == 2  # no --out
    assert gpubill("import").returncode == 2  # no source


def test_a_whole_commercial_setup_imports_and_checks(tmp_path):
    """Entity with tax, coupon, wallet (the invoice-order worked example) through the real CLI, then `check`."""
    src = FIXTURES.parent / "lago_examples" / "invoice_order.json"
    out = tmp_path / "billing"
    r = gpubill("import", "lago", str(src), "--out", str(out))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert 'tax "VAT" 10.0%' in (out / "entities.bill").read_text()
    contracts = (out / "contracts.bill").read_text()
    assert "credit 30.00 USD granted, priority 50" in contracts and "discount 10.00 USD once" in contracts
    check = gpubill("check", str(out))
    assert check.returncode == 0 and check.stdout == "" and check.stderr == ""


def test_a_setup_the_language_cannot_express_names_its_json_path_and_writes_nothing(tmp_path):
    import json

    doc = json.loads((FIXTURES.parent / "lago_examples" / "invoice_order.json").read_text())
    doc["wallet"]["applies_to"] = {"fee_types": ["subscription"], "billable_metric_codes": []}
    p = write(tmp_path, "setup.json", doc)
    out = tmp_path / "billing"
    r = gpubill("import", "lago", p, "--out", str(out))
    assert r.returncode == 1 and not out.exists()
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"{p}:") and "error[lago-unsupported]: wallet.applies_to.fee_types:" in first
    assert "Traceback" not in r.stderr
