"""Every lifecycle boundary through the real CLI: `gpubill invoices refresh|finalize|void` and
`gpubill credit-note` under each role, on a real draft and a real finalized invoice. A refused call is
one line, exit 6, and an access.refused entry; the least role allowed passes the role check and does it."""

import datetime as dt
from pathlib import Path

import pytest

from accesskit import gpubill
from gpubill.service import access, lifecycle
from gpubill.service.access import Actor
from gpubill.service.events import Store

EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples")
ROLES = ("viewer", "writer", "reviewer", "approver", "admin")
# command, the permission's wording, the least role (issue 10: finalize, void and credit notes need approver)
DRAFT, FINAL = "pixelforge_studios", "cirrus_exchange"  # the contracts whose November invoice is each
CALLS = [
    (("invoices", "refresh", "--contracts", EXAMPLES, "--period", "2026-11", "--customer", DRAFT),
     "refresh a draft invoice", "reviewer"),
    (("invoices", "finalize", "{draft}", "--contracts", EXAMPLES, "--yes"), "finalize an invoice", "approver"),
    (("credit-note", "{final}", "--amount", "10", "--reason", "other", "--yes"), "issue a credit note", "approver"),
    (("invoices", "void", "{final}", "--reason", "test", "--yes"), "void an invoice", "approver"),
]
MAY = {"reviewer": {"reviewer", "approver", "admin"}, "approver": {"approver", "admin"}}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """A store with one user per role (each named after its role), a November draft (DRAFT's) and a
    finalized November invoice (FINAL's); the path, and {"draft": id, "final": id}."""
    path = str(tmp_path_factory.mktemp("roles") / "s.db")
    admin = Actor("admin", "admin")
    dec_20 = int(dt.datetime(2026, 12, 20, tzinfo=dt.timezone.utc).timestamp() * 1000)
    with Store(path) as s:
        access.add_user(s, Actor("local", "admin"), "admin", "admin")
        for role in ROLES[:-1]:
            access.add_user(s, admin, role, role)
        ids = {k: lifecycle.refresh(s, [EXAMPLES], admin, "2026-11", c, now_ms=dec_20).invoices[0].id
               for k, c in (("draft", DRAFT), ("final", FINAL))}
        lifecycle.finalize(s, [EXAMPLES], admin, ids["final"], now_ms=dec_20)
    return path, ids


@pytest.mark.parametrize("args,verb,least", CALLS, ids=[" ".join(c[0][:2]) for c in CALLS])
def test_each_lifecycle_command_under_each_role(db, args, verb, least):
    db, ids = db
    args = [a.format(**ids) for a in args]
    for role in [r for r in ROLES if r not in MAY[least]] + [least]:  # each refused role, and the least allowed
        with Store(db) as s:
            before = len(access.audit_entries(s, action="access.refused", limit=10_000))
        rc, out, err = gpubill(*args, "--store", db, "--as", role)
        with Store(db) as s:
            logged = access.audit_entries(s, action="access.refused", limit=10_000)[before:]
        if role == least:
            assert rc == 0 and not logged, (role, err)
            continue
        assert (rc, out) == (6, ""), (role, err)
        assert err == f"gpubill: error: cli:{role} ({role}) may not {verb}: that needs the {least} role\n"
        assert [(e.actor, e.payload["role"]) for e in logged] == [(f"cli:{role}", role)]
