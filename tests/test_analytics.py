"""Usage analytics read rollups kept in the same transaction as each call; they always match the raw rows."""

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from conftest import Api, KeyHolder, credit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echo_control import analytics
from tests.invariants import rollup_mismatches

MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash"]
calls = st.lists(
    st.fixed_dictionaries(
        {
            "model": st.sampled_from(MODELS),
            "inputTokens": st.integers(0, 50_000),
            "outputTokens": st.integers(0, 20_000),
            "status": st.sampled_from(["success", "error", "timeout"]),
            "cost": st.decimals(min_value=0, max_value=Decimal("0.5"), places=6).map(str),
        }
    ),
    min_size=1,
    max_size=40,
)


def test_usage_by_model_and_by_day_with_totals(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "100")
    sent = [("gpt-4o", 1000, 200, "0.010000"), ("gpt-4o", 3000, 100, "0.020000"), ("gpt-4o-mini", 500, 500, "0.001000")]
    for model, tokens_in, tokens_out, cost in sent:
        body = {"model": model, "inputTokens": tokens_in, "outputTokens": tokens_out, "cost": cost}
        assert key_holder.call("POST", "/api/transactions", body).status == 201
    usage = key_holder.session.call("GET", f"/api/echo-apps/{key_holder.app['id']}/usage").body
    today = datetime.now(UTC).date()
    assert usage["until"] == today.isoformat() and usage["since"] == (today - timedelta(days=29)).isoformat()
    assert usage["totals"] == {
        "calls": 3,
        "inputTokens": 4500,
        "outputTokens": 800,
        "totalTokens": 5300,
        "providerCost": "0.031000",
        "markupAmount": "0.000000",
        "cost": "0.031000",
    }
    assert [(m["model"], m["calls"], m["cost"]) for m in usage["byModel"]] == [
        ("gpt-4o", 2, "0.030000"),
        ("gpt-4o-mini", 1, "0.001000"),
    ]
    assert [(d["day"], d["calls"]) for d in usage["byDay"]] == [(today.isoformat(), 3)]
    past = key_holder.session.call(
        "GET", f"/api/echo-apps/{key_holder.app['id']}/usage", query={"from": "2020-01-01", "to": "2020-01-31"}
    ).body
    assert past["totals"]["calls"] == 0 and past["byModel"] == []

    listed = key_holder.session.call("GET", "/api/echo-apps").body["echoApps"][0]
    assert listed["totals"]["calls"] == 3 and listed["totals"]["cost"] == "0.031000"
    detail = key_holder.session.call("GET", f"/api/echo-apps/{key_holder.app['id']}").body
    assert [m["model"] for m in detail["usageByModel"]] == ["gpt-4o", "gpt-4o-mini"]
    assert len(detail["apiKeys"]) == 1 and len(detail["recentTransactions"]) == 3


def test_app_details_show_the_20_most_recent_transactions(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "10")
    for i in range(23):
        key_holder.call(
            "POST", "/api/transactions", {"model": "gpt-4o", "inputTokens": i, "outputTokens": 0, "cost": "0.01"}
        )
    recent = key_holder.session.call("GET", f"/api/echo-apps/{key_holder.app['id']}").body["recentTransactions"]
    assert len(recent) == 20
    assert [t["inputTokens"] for t in recent] == list(range(22, 2, -1))


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"from": "2026-02-01", "to": "2026-01-01"}, 400),
        ({"from": "2020-01-01", "to": "2026-01-01"}, 400),
        ({"from": "yesterday"}, 422),
    ],
)
def test_bad_usage_ranges_are_4xx(key_holder: KeyHolder, query, status) -> None:
    reply = key_holder.session.call("GET", f"/api/echo-apps/{key_holder.app['id']}/usage", query=query)
    assert reply.status == status


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=calls)
def test_rollups_equal_raw_aggregates_after_concurrent_random_workloads(api: Api, key_holder: KeyHolder, batch) -> None:
    credit(key_holder.session.user["id"], "100")
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(
                lambda body: Api(api.client.application).call("POST", "/api/transactions", key_holder.key, body).status,
                batch,
            )
        )
    assert set(statuses) == {201}
    assert rollup_mismatches() == []


def test_csv_export_pages_through_history(key_holder: KeyHolder, monkeypatch: pytest.MonkeyPatch) -> None:
    credit(key_holder.session.user["id"], "10")
    for i in range(7):
        key_holder.call(
            "POST", "/api/transactions", {"model": "gpt-4o", "inputTokens": i, "outputTokens": 1, "cost": "0.000100"}
        )
    monkeypatch.setattr(analytics, "EXPORT_PAGE_ROWS", 2)
    monkeypatch.setattr(analytics, "EXPORT_MAX_ROWS", 5)
    session = key_holder.session
    first = session.call("GET", "/api/transactions/export", query={"echoAppId": key_holder.app["id"]})
    assert first.status == 200 and first.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(first.body)))
    assert len(rows) == 5 and [r["inputTokens"] for r in rows] == ["6", "5", "4", "3", "2"]
    assert rows[0]["cost"] == "0.000100" and rows[0]["model"] == "gpt-4o"
    cursor = first.headers["X-Next-Cursor"]
    rest = session.call("GET", "/api/transactions/export", query={"echoAppId": key_holder.app["id"], "cursor": cursor})
    assert [r["inputTokens"] for r in csv.DictReader(io.StringIO(rest.body))] == ["1", "0"]
    assert "X-Next-Cursor" not in rest.headers
    none = session.call("GET", "/api/transactions/export", query={"from": "2999-01-01T00:00:00Z"})
    assert none.body.strip() == ",".join(analytics.CSV_COLUMNS)


def test_the_markup_split_shows_wherever_cost_totals_do(api: Api, user) -> None:
    app = user.create_app("Marked up", markup="1.25", acceptsCustomers=True)
    _, key = user.customer_of(app)  # a customer: the app's markup applies (an owner's own calls carry none)
    for model, cost in (("gpt-4o", "0.010000"), ("gpt-4o", "0.000003"), ("gpt-4o-mini", "0.002000")):
        body = {"model": model, "inputTokens": 1, "outputTokens": 1, "cost": cost}
        assert api.call("POST", "/api/transactions", key, body).status == 201
    # markups 0.002500, 0.000001 (0.00000075 rounded half-up) and 0.000500
    split = {"providerCost": "0.012003", "markupAmount": "0.003001", "cost": "0.015004"}
    usage = user.call("GET", f"/api/echo-apps/{app['id']}/usage").body
    assert {k: usage["totals"][k] for k in split} == split
    assert [(m["model"], m["providerCost"], m["markupAmount"], m["cost"]) for m in usage["byModel"]] == [
        ("gpt-4o", "0.010003", "0.002501", "0.012504"),
        ("gpt-4o-mini", "0.002000", "0.000500", "0.002500"),
    ]
    assert {k: usage["byDay"][0][k] for k in split} == split
    detail = user.call("GET", f"/api/echo-apps/{app['id']}").body
    assert {k: detail["totals"][k] for k in split} == split
    assert {k: detail["usageByModel"][0][k] for k in split} == {
        "providerCost": "0.010003",
        "markupAmount": "0.002501",
        "cost": "0.012504",
    }
    [listed] = [a for a in user.call("GET", "/api/echo-apps").body["echoApps"] if a["id"] == app["id"]]
    assert {k: listed["totals"][k] for k in split} == split
    for path in ("/api/transactions/export", f"/apps/{app['id']}/transactions.csv"):
        reply = user.call("GET", path, headers={"Cookie": f"echo_session={user.token}"}, query={"echoAppId": app["id"]})
        rows = list(csv.DictReader(io.StringIO(reply.body)))
        assert list(rows[0]) == analytics.CSV_COLUMNS
        assert [(r["providerCost"], r["markupAmount"], r["cost"]) for r in rows] == [
            ("0.002000", "0.000500", "0.002500"),
            ("0.000003", "0.000001", "0.000004"),
            ("0.010000", "0.002500", "0.012500"),
        ]


@pytest.mark.parametrize("model", ["+1-2", "-2+3", "@cmd"])  # what model names may start with
def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_neutralized(key_holder: KeyHolder, model: str) -> None:
    credit(key_holder.session.user["id"], "1")
    recorded = key_holder.call(
        "POST", "/api/transactions", {"model": model, "inputTokens": 1, "outputTokens": 1, "cost": "0.000001"}
    )
    assert recorded.status == 201, recorded.body
    for path in ("/api/transactions/export", f"/apps/{key_holder.app['id']}/transactions.csv"):
        headers = {"Cookie": f"echo_session={key_holder.session.token}"}
        reply = key_holder.session.call("GET", path, headers=headers)
        assert reply.status == 200, reply.body
        [row] = list(csv.DictReader(io.StringIO(reply.body)))
        assert row["model"] == "'" + model  # shown as text, never evaluated
        assert row["cost"] == "0.000001" and row["inputTokens"] == "1"  # numbers stay numbers


@pytest.mark.parametrize("text", ["=1+2", "+1-2", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_every_formula_start_is_neutralized_and_other_cells_are_not(text: str) -> None:
    assert analytics.spreadsheet_safe(text) == "'" + text
    assert analytics.spreadsheet_safe("gpt-4o") == "gpt-4o"
    assert analytics.spreadsheet_safe(-1) == -1  # a number is data, not a formula


def test_usage_and_export_take_a_plain_date_or_a_timestamp_the_same_way(key_holder: KeyHolder) -> None:
    credit(key_holder.session.user["id"], "1")
    call = {"model": "gpt-4o-mini", "inputTokens": 10, "outputTokens": 5}
    assert key_holder.call("POST", "/api/transactions", call).status == 201
    today = datetime.now(UTC).date()
    usage_path = f"/api/echo-apps/{key_holder.app['id']}/usage"
    export_path = "/api/transactions/export"

    def usage_calls(since: str, until: str) -> int:
        reply = key_holder.session.call("GET", usage_path, query={"from": since, "to": until})
        assert reply.status == 200, reply.body
        return reply.body["totals"]["calls"]

    def exported_rows(since: str, until: str) -> int:
        reply = key_holder.session.call("GET", export_path, query={"from": since, "to": until})
        assert reply.status == 200, reply.body
        return len(reply.body.strip().splitlines()) - 1  # minus the header

    day, midnight = today.isoformat(), f"{today.isoformat()}T00:00:00Z"
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    tomorrow = (today + timedelta(days=1)).isoformat()
    # a plain date is the whole UTC day, as a "to" bound too; a timestamp is that instant
    assert usage_calls(day, day) == 1 and exported_rows(day, day) == 1
    assert usage_calls(midnight, later) == 1 and exported_rows(midnight, later) == 1
    assert usage_calls(tomorrow, tomorrow) == 0 and exported_rows(tomorrow, tomorrow) == 0
    for bad in ("2027-13-01", "2027-01-01T00:00:00", "yesterday", "1700000000"):
        for path in (usage_path, export_path):
            reply = key_holder.session.call("GET", path, query={"from": bad})
            assert reply.status == 422 and reply.error_code == "validation_error", (path, bad, reply.body)
