"""The statement: every balance entry, newest first, with the balance after it and the reason of an adjustment."""

import csv
import io
from decimal import Decimal
from typing import Any

from conftest import KeyHolder, credit

from tests.invariants import statement_mismatches


def test_the_statement_shows_every_entry_with_the_balance_after_it(admin: Any, key_holder: KeyHolder) -> None:
    user_id = key_holder.session.user["id"]
    assert (
        admin.call("POST", "/api/balance", {"userId": user_id, "amount": "5", "reason": "Welcome credit"}).status == 200
    )
    call = key_holder.call(
        "POST", "/api/transactions", {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": "0.25"}
    )
    entries = key_holder.session.call("GET", "/api/ledger").body["entries"]
    assert [(e["kind"], Decimal(e["amount"]), Decimal(e["balanceAfter"])) for e in entries] == [
        ("llm_debit", Decimal("-0.25"), Decimal("4.75")),
        ("admin_adjustment", Decimal("5"), Decimal("5")),
    ]
    assert entries[0]["referenceId"] == call.body["id"]
    assert entries[1]["reason"] == "Welcome credit"
    assert statement_mismatches() == []


def test_the_statement_pages_with_a_cursor_and_as_csv(user: Any) -> None:
    for n in range(5):
        credit(user.user["id"], f"{n + 1}")
    first = user.call("GET", "/api/ledger?limit=2").body
    second = user.call("GET", f"/api/ledger?limit=2&cursor={first['nextCursor']}").body
    third = user.call("GET", f"/api/ledger?limit=2&cursor={second['nextCursor']}").body
    amounts = [Decimal(e["amount"]) for page in (first, second, third) for e in page["entries"]]
    assert amounts == [5, 4, 3, 2, 1] and third["nextCursor"] is None
    exported = user.call("GET", "/api/ledger?format=csv")
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.body)))
    assert [Decimal(r["balanceAfter"]) for r in rows] == [15, 10, 6, 3, 1]
    assert user.call("GET", "/api/ledger?cursor=abc").status == 400


def test_only_admins_read_another_users_statement(admin: Any, user: Any, other_user: Any) -> None:
    credit(user.user["id"], "2")
    assert other_user.call("GET", f"/api/ledger?userId={user.user['id']}").status in (403, 404)
    shown = admin.call("GET", f"/api/ledger?userId={user.user['id']}").body["entries"]
    assert [Decimal(e["amount"]) for e in shown] == [2]


def test_a_reason_that_looks_like_a_formula_is_inert_in_the_csv(admin: Any, user: Any) -> None:
    admin.call("POST", "/api/balance", {"userId": user.user["id"], "amount": "1", "reason": "=HYPERLINK(1)"})
    rows = list(csv.DictReader(io.StringIO(user.call("GET", "/api/ledger?format=csv").body)))
    assert rows[0]["reason"] == "'=HYPERLINK(1)"
