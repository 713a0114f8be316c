"""Webhooks to developers: endpoints, the outbox (exactly one event per committed change), balance alerts that
re-arm, and deliveries to a real HTTP receiver on loopback, signed as Standard Webhooks says and checked with the
`standardwebhooks` library's own verifier."""

import contextlib
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import Api, Session, credit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from echo_control import config, db, events, webhook_delivery
from tests.test_payments import completed_event, deliver, refund_event

# --- a receiver on loopback ------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: str


@dataclass
class Receiver:
    """A real HTTP server: answers each POST with the next scripted status (then 200) and keeps what came."""

    url: str
    statuses: list[int] = field(default_factory=list)
    answer: bytes = b"ok"
    extra_headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            state.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            for name, value in state.extra_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)
            state.arrived.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks"
    try:
        yield state
    finally:
        server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECHO_WEBHOOKS_ALLOW_PRIVATE", "true")


def add_endpoint(session: Session, url: str, types: list[str] | None = None) -> dict[str, Any]:
    reply = session.call("POST", "/api/webhooks", {"url": url, "events": types or list(events.TYPES)})
    assert reply.status == 201, reply.body
    return reply.body


def events_of(user_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
    return (
        db.connection()
        .execute(
            "SELECT id, type, data FROM webhook_events WHERE user_id = %s AND (%s::text IS NULL OR type = %s) "
            "ORDER BY created_at, id",
            [user_id, event_type, event_type],
        )
        .fetchall()
    )


def deliveries_of(endpoint_id: str) -> list[dict[str, Any]]:
    return (
        db.connection()
        .execute(
            "SELECT id, event_id, status, attempts, next_attempt_at, last_status_code FROM webhook_deliveries "
            "WHERE endpoint_id = %s ORDER BY created_at, id",
            [endpoint_id],
        )
        .fetchall()
    )


def make_due(endpoint_id: str) -> None:
    """Brings the endpoint's pending deliveries' next attempt to now (the backoff's wait, skipped)."""
    db.connection().execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = %s AND status = 'pending'",
        [endpoint_id],
    )


def deliver_all(endpoint_id: str) -> None:
    """Sends what is due until nothing of this endpoint is (other tests' rows may be due as well)."""
    for _ in range(20):
        webhook_delivery.deliver_due(200)
        pending = [d for d in deliveries_of(endpoint_id) if d["status"] == "pending" and d["attempts"] == 0]
        if not pending:
            return


def pay(api: Api, session: Session, amount: str = "20") -> dict[str, Any]:
    reply = session.call("POST", "/api/stripe/payment-link", {"amount": amount})
    assert reply.status == 201, reply.body
    link = reply.body
    event = completed_event(link["paymentId"], session.user["id"], link["sessionId"], int(Decimal(amount) * 100))
    assert deliver(api, event).status == 200
    return {**link, "intent": event["data"]["object"]["payment_intent"]}


# --- endpoints -----------------------------------------------------------------------------------------


def test_an_endpoint_is_added_with_a_secret_shown_once_listed_without_it_and_removed(user, other_user) -> None:
    created = add_endpoint(user, "https://hooks.example.com/echo", ["payment.succeeded", "balance.low"])
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert (
        created["events"] == ["payment.succeeded", "balance.low"] and created["url"] == "https://hooks.example.com/echo"
    )
    listed = user.call("GET", "/api/webhooks").body["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    assert created["secret"] not in json.dumps(listed)
    # the stored secret is sealed, not the secret itself
    row = (
        db.connection().execute("SELECT secret_sealed FROM webhook_endpoints WHERE id = %s", [created["id"]]).fetchone()
    )
    assert created["secret"].encode() not in bytes(row["secret_sealed"])
    # another user's endpoint is 404, like a missing one
    assert other_user.call("GET", f"/api/webhooks/{created['id']}/deliveries").status == 404
    assert other_user.call("DELETE", f"/api/webhooks/{created['id']}").status == 404
    assert other_user.call("GET", "/api/webhooks").body["webhooks"] == []
    removed = user.call("DELETE", f"/api/webhooks/{created['id']}")
    assert removed.status == 200 and removed.body["id"] == created["id"] and "secret" not in removed.body
    assert user.call("DELETE", f"/api/webhooks/{created['id']}").status == 404
    assert user.call("GET", "/api/webhooks").body["webhooks"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://example.com/x", "events": ["balance.low"]}, "validation_error"),
        ({"url": "https://example.com/x", "events": []}, "validation_error"),
        ({"url": "https://example.com/x", "events": ["payment.exploded"]}, "validation_error"),
        ({"url": "https://example.com/x"}, "validation_error"),
        ({"url": "https://user:pw@example.com/x", "events": ["balance.low"]}, "invalid_url"),
        ({"url": "http://127.0.0.1:9/x", "events": ["balance.low"]}, "private_url"),
        ({"url": "https://169.254.169.254/latest/meta-data", "events": ["balance.low"]}, "private_url"),
        ({"url": "https://[fd00::1]/x", "events": ["balance.low"]}, "private_url"),
        ({"url": "https://localhost/x", "events": ["balance.low"]}, "private_url"),
        ({"url": "https://example.com/x", "events": ["balance.low"], "secret": "whsec_mine"}, "validation_error"),
    ],
)
def test_bad_endpoints_are_refused_and_nothing_is_added(user, body, code) -> None:
    reply = user.call("POST", "/api/webhooks", body)
    assert reply.status == 422 and reply.error_code == code, reply.body
    assert user.call("GET", "/api/webhooks").body["webhooks"] == []


def test_only_https_is_accepted_in_the_cloud(user, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:db")
    with pytest.raises(Exception, match="url must be https"):
        webhook_delivery.check_url("http://hooks.example.com/x")
    monkeypatch.delenv("DB_SECRET_ARN")
    assert webhook_delivery.check_url("http://hooks.example.com/x")


# --- the outbox: one event per committed change --------------------------------------------------------


def test_an_event_rolled_back_with_its_change_is_never_written_and_a_committed_one_is(user) -> None:
    user_id = uuid.UUID(user.user["id"])

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.transaction() as conn:
        events.emit(conn, user_id, events.PAYMENT_SUCCEEDED, {"paymentId": "p1", "amount": Decimal("1.50")})
        raise Boom
    assert events_of(user.user["id"]) == []
    with db.transaction() as conn:
        events.emit(conn, user_id, events.PAYMENT_SUCCEEDED, {"paymentId": "p2", "amount": Decimal("1.50")})
    assert [(e["type"], e["data"]) for e in events_of(user.user["id"])] == [
        ("payment.succeeded", {"paymentId": "p2", "amount": "1.50"})
    ]


def test_a_payment_and_its_refunds_each_emit_one_event_however_often_stripe_delivers(api, user) -> None:
    link = pay(api, user, "20")
    refund = refund_event(link["paymentId"], user.user["id"], 500, link["intent"])
    for _ in range(3):  # the same event again, and the same cumulative total in a new event, change nothing
        deliver(api, refund)
    deliver(api, refund_event(link["paymentId"], user.user["id"], 500, link["intent"]))
    deliver(api, refund_event(link["paymentId"], user.user["id"], 1200, link["intent"]))
    found = events_of(user.user["id"])
    assert [e["type"] for e in found] == ["payment.succeeded", "payment.refunded", "payment.refunded"]
    assert found[0]["data"]["amount"] == "20.00" and found[0]["data"]["paymentId"] == link["paymentId"]
    assert [(e["data"]["refundedAmount"], e["data"]["amountRefunded"]) for e in found[1:]] == [
        ("5.00", "5.00"),
        ("7.00", "12.00"),
    ]


def test_a_storm_of_concurrent_deliveries_emits_exactly_one_event_per_payment(api, user) -> None:
    links = []
    for _ in range(12):
        reply = user.call("POST", "/api/stripe/payment-link", {"amount": "5"})
        links.append(reply.body)
    stripe_events = [completed_event(link["paymentId"], user.user["id"], link["sessionId"], 500) for link in links]
    # each event delivered four times at once, some as the same event, some as a new event for the same payment
    storm = [e for e in stripe_events for _ in range(2)]
    storm += [{**e, "id": f"evt_{uuid.uuid4().hex}"} for e in stripe_events for _ in range(2)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda e: deliver(api, e).status, storm))
    assert set(statuses) == {200}
    found = events_of(user.user["id"], "payment.succeeded")
    assert sorted(e["data"]["paymentId"] for e in found) == sorted(link["paymentId"] for link in links)


def test_a_new_customer_is_reported_to_the_apps_owner_once(api, user, other_user) -> None:
    app = user.create_app("Open app", acceptsCustomers=True)
    other_user.create_key(app["id"])
    other_user.create_key(app["id"])  # a second key: already a customer
    user.create_key(app["id"])  # the owner's own key makes no customer
    found = events_of(user.user["id"], "customer.created")
    assert [(e["data"]["echoAppId"], e["data"]["customerId"]) for e in found] == [(app["id"], other_user.user["id"])]
    assert found[0]["data"]["email"] == other_user.user["email"]
    assert events_of(other_user.user["id"]) == []


# --- balance.low: once, re-armed when spendable rises above ---------------------------------------------


def call(key_holder, cost: str, **extra: Any) -> Any:
    return key_holder.call(
        "POST", "/api/transactions", {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 10, "cost": cost, **extra}
    )


def test_balance_low_is_sent_once_when_spendable_crosses_below_and_again_only_after_it_rose_above(
    key_holder,
) -> None:
    session, user_id = key_holder.session, key_holder.session.user["id"]
    credit(user_id, "10")
    reply = session.call("PUT", "/api/balance/alerts", {"lowBalanceThreshold": "5.00"})
    assert reply.status == 200 and reply.body == {"lowBalanceThreshold": "5.000000", "armed": True}, reply.body
    assert call(key_holder, "4").status == 201  # 10 → 6: above
    assert events_of(user_id, "balance.low") == []
    assert call(key_holder, "2").status == 201  # 6 → 4: crossed below
    assert call(key_holder, "1").status == 201  # 4 → 3: still below, no second alert
    hold = key_holder.call("POST", "/api/holds", {"amount": "1"})  # holds count: 3 → 2
    assert hold.status == 201
    low = events_of(user_id, "balance.low")
    assert [e["data"] for e in low] == [
        {"userId": user_id, "spendable": "4.000000", "balance": "4.000000", "threshold": "5.000000"}
    ]
    assert session.call("GET", "/api/balance").status == 200
    credit(user_id, "2")  # 2 → 4: not above the threshold, still disarmed
    assert call(key_holder, "1").status == 201
    assert len(events_of(user_id, "balance.low")) == 1
    credit(user_id, "10")  # → 13: above, re-armed
    assert db.low_balance_threshold(uuid.UUID(user_id))["low_balance_armed"] is True
    assert call(key_holder, "9").status == 201  # 13 → 4: below again
    assert len(events_of(user_id, "balance.low")) == 2
    # off: nothing more
    assert session.call("PUT", "/api/balance/alerts", {"lowBalanceThreshold": None}).body == {
        "lowBalanceThreshold": None,
        "armed": False,
    }
    credit(user_id, "10")
    assert call(key_holder, "12").status == 201
    assert len(events_of(user_id, "balance.low")) == 2


@pytest.mark.parametrize("body", [{"lowBalanceThreshold": "-1"}, {}, {"lowBalanceThreshold": "abc"}, {"x": 1}])
def test_a_bad_threshold_is_refused(user, body) -> None:
    assert user.call("PUT", "/api/balance/alerts", body).status == 422
    assert db.low_balance_threshold(uuid.UUID(user.user["id"])) is None


def test_a_debit_rolled_back_leaves_no_balance_alert(key_holder) -> None:
    """balance.low is written by the debit's own statement: a debit whose transaction rolls back leaves none."""
    session, user_id = key_holder.session, key_holder.session.user["id"]
    credit(user_id, "10")
    session.call("PUT", "/api/balance/alerts", {"lowBalanceThreshold": "5"})
    key = session.call("GET", "/api/api-keys").body["apiKeys"][0]
    params = {
        "user_id": user_id,
        "echo_app_id": key_holder.app["id"],
        "api_key_id": key["id"],
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 1,
        "output_tokens": 1,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 2,
        "cost": Decimal("6"),
        "markup_amount": Decimal("0"),
        "require_funds": True,
        "clearing_days": 7,
        "status": "success",
        "metadata": None,
    }
    with pytest.raises(RuntimeError), db.transaction() as conn:
        assert db.record_debit(conn, params)["funded"]
        seen = conn.execute("SELECT count(*) AS n FROM webhook_events WHERE user_id = %s", [user_id]).fetchone()
        assert seen["n"] == 1  # written in the debit's statement …
        raise RuntimeError
    assert events_of(user_id, "balance.low") == []  # … and gone with it
    assert db.low_balance_threshold(uuid.UUID(user_id))["low_balance_armed"] is True
    assert call(key_holder, "6").status == 201
    assert len(events_of(user_id, "balance.low")) == 1


# --- key.limit_reached ---------------------------------------------------------------------------------


def test_a_key_reaching_its_limit_is_reported_once_whether_reached_or_refused(key_holder) -> None:
    session, user_id = key_holder.session, key_holder.session.user["id"]
    credit(user_id, "50")
    key = session.call("GET", "/api/api-keys").body["apiKeys"][0]
    assert session.call("PUT", f"/api/api-keys/{key['id']}", {"spendLimit": "3", "limitPeriod": "total"}).status == 200
    assert call(key_holder, "2").status == 201
    assert events_of(user_id, "key.limit_reached") == []
    assert call(key_holder, "2", requireFunds=True).status == 402  # refused for the limit: reported
    assert call(key_holder, "2", requireFunds=True).status == 402  # again: not reported twice
    found = events_of(user_id, "key.limit_reached")
    assert [(e["data"]["apiKeyId"], e["data"]["spendLimit"]) for e in found] == [(key["id"], "3.000000")]
    # a higher limit reached exactly by a recorded call is a new limit reached
    assert session.call("PUT", f"/api/api-keys/{key['id']}", {"spendLimit": "5", "limitPeriod": "total"}).status == 200
    assert call(key_holder, "3").status == 201
    found = events_of(user_id, "key.limit_reached")
    assert [e["data"]["spendLimit"] for e in found] == ["3.000000", "5.000000"]
    assert found[1]["data"]["spentInPeriod"] == "5.000000"


# --- delivery ------------------------------------------------------------------------------------------


def test_a_delivery_is_signed_as_standard_webhooks_says(api, user, receiver, allow_private) -> None:
    endpoint = add_endpoint(user, receiver.url, ["payment.succeeded"])
    link = pay(api, user, "20")
    deliver_all(endpoint["id"])
    assert len(receiver.received) == 1
    got = receiver.received[0]
    # the library's own verifier, with the secret shown once
    payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "payment.succeeded"
    assert payload["data"]["paymentId"] == link["paymentId"] and payload["data"]["amount"] == "20.00"
    assert payload["timestamp"].endswith("Z")
    assert got.headers["webhook-id"] == str(events_of(user.user["id"])[0]["id"])
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.headers["content-type"] == "application/json"
    # another secret does not verify it
    with pytest.raises(Exception, match="signature"):
        Webhook(webhook_delivery.new_secret()).verify(got.body, got.headers)
    [delivery] = deliveries_of(endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("succeeded", 1, 200)


def test_a_receiver_that_fails_then_recovers_gets_the_same_webhook_id_with_backoff(
    api, user, receiver, allow_private
) -> None:
    endpoint = add_endpoint(user, receiver.url, ["payment.succeeded"])
    receiver.statuses = [500, 503]
    receiver.answer = b"x" * 5000  # far more than is kept
    pay(api, user, "7")
    deliver_all(endpoint["id"])
    [delivery] = deliveries_of(endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("pending", 1, 500)
    wait = (
        db.connection()
        .execute("SELECT next_attempt_at - now() AS wait FROM webhook_deliveries WHERE id = %s", [delivery["id"]])
        .fetchone()["wait"]
    )
    assert 3 <= wait.total_seconds() <= 5  # the first backoff: 5 seconds
    webhook_delivery.deliver_due(200)
    assert len(receiver.received) == 1  # not due yet: not sent
    for _ in range(2):
        make_due(endpoint["id"])
        webhook_delivery.deliver_due(200)
    [delivery] = deliveries_of(endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("succeeded", 3, 200)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1 and len(receiver.received) == 3
    assert len({r.body for r in receiver.received}) == 1  # the same payload every time
    for got in receiver.received:
        Webhook(endpoint["secret"]).verify(got.body, got.headers)
    # what the API and the stored attempts say
    listed = user.call("GET", f"/api/webhooks/{endpoint['id']}/deliveries").body["deliveries"]
    assert [(d["eventType"], d["status"], d["attempts"], d["lastStatusCode"]) for d in listed] == [
        ("payment.succeeded", "succeeded", 3, 200)
    ]
    assert listed[0]["nextAttemptAt"] is None
    attempts = db.attempts_for_deliveries([delivery["id"]])
    assert [a["status_code"] for a in attempts] == [500, 503, 200]
    assert all(len(a["response_body"].encode()) <= 1024 for a in attempts)


def test_a_delivery_failing_for_24_hours_fails_and_a_resend_sends_it_again(api, user, receiver, allow_private) -> None:
    endpoint = add_endpoint(user, receiver.url, ["payment.succeeded"])
    receiver.statuses = [500] * 8
    pay(api, user, "7")
    deliver_all(endpoint["id"])
    waits = []
    for _ in range(7):
        row = (
            db.connection()
            .execute(
                "SELECT next_attempt_at - updated_at AS wait FROM webhook_deliveries WHERE endpoint_id = %s",
                [endpoint["id"]],
            )
            .fetchone()
        )
        waits.append(round(row["wait"].total_seconds()))
        make_due(endpoint["id"])
        webhook_delivery.deliver_due(200)
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 23100]
    assert sum(waits) == 24 * 3600 + 5  # attempts span 24 hours
    [delivery] = deliveries_of(endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["next_attempt_at"]) == ("failed", 8, None)
    # resent by hand: the same webhook-id, now answered
    reply = user.call("POST", f"/api/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/retry")
    assert reply.status == 200 and reply.body["status"] == "pending", reply.body
    webhook_delivery.deliver_due(200)
    [delivery] = deliveries_of(endpoint["id"])
    assert (delivery["status"], delivery["attempts"]) == ("succeeded", 9)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    # another user's delivery, or one of another endpoint, is 404
    other = add_endpoint(user, receiver.url, ["balance.low"])
    assert user.call("POST", f"/api/webhooks/{other['id']}/deliveries/{delivery['id']}/retry").status == 404
    assert user.call("POST", f"/api/webhooks/{endpoint['id']}/deliveries/nope/retry").status == 404


def test_an_endpoint_failing_for_five_days_is_disabled_and_a_success_enables_it(
    api, user, receiver, allow_private
) -> None:
    endpoint = add_endpoint(user, receiver.url, ["payment.succeeded"])
    receiver.statuses = [500, 500]
    pay(api, user, "7")
    pay(api, user, "8")
    db.connection().execute(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '5 days 1 minute' WHERE id = %s",
        [endpoint["id"]],
    )
    webhook_delivery.deliver_due(1)  # one attempt: fails, five days after the first failure
    listed = user.call("GET", "/api/webhooks").body["webhooks"][0]
    assert listed["disabledAt"] is not None and "failed since" in listed["disabledReason"]
    assert sorted(d["status"] for d in deliveries_of(endpoint["id"])) == ["failed", "pending"] or sorted(
        d["status"] for d in deliveries_of(endpoint["id"])
    ) == ["failed", "failed"]
    # nothing new is delivered to it
    pay(api, user, "9")
    assert len(deliveries_of(endpoint["id"])) == 2
    # a resend that succeeds proves it works again
    receiver.statuses = []
    first = deliveries_of(endpoint["id"])[0]
    user.call("POST", f"/api/webhooks/{endpoint['id']}/deliveries/{first['id']}/retry")
    webhook_delivery.deliver_due(200)
    listed = user.call("GET", "/api/webhooks").body["webhooks"][0]
    assert listed["disabledAt"] is None and listed["failingSince"] is None


def test_a_redirect_is_not_followed(api, user, receiver, allow_private) -> None:
    endpoint = add_endpoint(user, receiver.url, ["payment.succeeded"])
    receiver.statuses = [302]
    receiver.extra_headers = {"Location": "http://169.254.169.254/latest/meta-data/"}
    pay(api, user, "7")
    deliver_all(endpoint["id"])
    [delivery] = deliveries_of(endpoint["id"])
    assert (delivery["status"], delivery["last_status_code"]) == ("pending", 302)
    assert len(receiver.received) == 1


# --- SSRF: names that resolve to addresses we never call -------------------------------------------------


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["10.1.2.3"],
        ["192.168.0.10"],
        ["172.16.5.5"],
        ["169.254.169.254"],
        ["100.64.0.1"],
        ["0.0.0.0"],  # noqa: S104 - an address a name may resolve to, not one we bind
        ["::1"],
        ["fd00::1"],
        ["fe80::1"],
        ["::ffff:127.0.0.1"],
        ["93.184.215.14", "10.0.0.1"],  # one private among public ones
    ],
)
def test_a_name_resolving_to_a_private_address_is_refused_at_send_time(
    api, user, receiver, addresses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS answers private addresses for a public-looking name (a stand-in resolver): nothing is sent, the attempt
    is a failure saying why, retried later like any other."""
    name = f"hooks-{uuid.uuid4().hex[:8]}.example.com"
    endpoint = add_endpoint(user, f"https://{name}/echo", ["payment.succeeded"])
    real = socket.getaddrinfo
    asked: list[str] = []

    def resolver(host: str, port: Any, *args: Any, **kwargs: Any) -> list:
        if host != name:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        family = {4: socket.AF_INET, 6: socket.AF_INET6}
        return [
            (family[6 if ":" in a else 4], socket.SOCK_STREAM, 6, "", (a, port) if ":" not in a else (a, port, 0, 0))
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    pay(api, user, "7")
    deliver_all(endpoint["id"])
    assert asked == [name]
    [delivery] = deliveries_of(endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("pending", 1, None)
    [attempt] = db.attempts_for_deliveries([delivery["id"]])
    assert attempt["error"].startswith("refused:") and "non-public" in attempt["error"]


def test_the_outcome_of_a_send_never_exceeds_five_seconds(receiver, allow_private) -> None:
    """A receiver that accepts the connection and never answers: the attempt ends at the 5 s timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        outcome = webhook_delivery.post(f"http://127.0.0.1:{listener.getsockname()[1]}/", "{}", {})
    finally:
        listener.close()
    assert outcome.status_code is None and "timed out" in (outcome.error or "")
    assert 4900 <= outcome.duration_ms < 7000


def test_sealed_secrets_open_only_with_their_endpoint() -> None:
    endpoint, other = uuid.uuid4(), uuid.uuid4()
    secret = webhook_delivery.new_secret()
    sealed = webhook_delivery.seal(endpoint, secret)
    assert webhook_delivery.unseal(endpoint, sealed) == secret
    with pytest.raises(Exception):  # noqa: B017 - the AEAD refuses, whatever its exception's name
        webhook_delivery.unseal(other, sealed)
    assert secrets.compare_digest(webhook_delivery.unseal(endpoint, sealed), secret)


# --- the property: every committed money change has exactly one event -----------------------------------

# An operation on one buyer's payments: complete payment i, refund it up to a cumulative share, or deliver an
# earlier Stripe event again; each maybe inside a transaction that rolls back.
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["complete", "refund", "redeliver"]),
        st.integers(0, 2),  # which payment
        st.integers(1, 100),  # a refund's cumulative share, in percent
        st.booleans(),  # rolled back
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_every_committed_money_change_has_exactly_one_event(api: Api, operations: list) -> None:
    from echo_control import payments

    session = api.sign_in()
    user_id = session.user["id"]
    links = [session.call("POST", "/api/stripe/payment-link", {"amount": "10"}).body for _ in range(3)]
    sent: list[str] = []
    for kind, which, share, rolled_back in operations:
        link = links[which]
        if kind == "complete":
            event = completed_event(link["paymentId"], user_id, link["sessionId"], 1000, payment_intent=f"pi_{which}")
        elif kind == "refund":
            event = refund_event(link["paymentId"], user_id, 10 * share, f"pi_{which}")
        elif sent:
            event = json.loads(sent[which % len(sent)])
        else:
            continue
        payload = json.dumps(event)
        signature = payments.sign_payload(payload, config.stripe_credentials().webhook_secret)
        if rolled_back:  # the change and its event in one transaction that does not commit
            with contextlib.suppress(RuntimeError), db.transaction():
                payments.handle_webhook(payload, signature)
                raise RuntimeError
        else:
            payments.handle_webhook(payload, signature)
            sent.append(payload)
    changes = (
        db.connection()
        .execute(
            "SELECT kind, reference_id FROM ledger_entries WHERE user_id = %s AND kind IN ('payment_credit', 'refund') "
            "ORDER BY id",
            [user_id],
        )
        .fetchall()
    )
    reported = events_of(user_id)
    kinds = {"payment_credit": "payment.succeeded", "refund": "payment.refunded"}
    assert sorted((kinds[c["kind"]], str(c["reference_id"])) for c in changes) == sorted(
        (e["type"], e["data"]["paymentId"]) for e in reported
    )


def test_the_local_runners_deliverer_sends_as_soon_as_the_change_commits(api, user, receiver, allow_private) -> None:
    """run_local (the runner's thread) wakes on the commit's NOTIFY: nothing here calls deliver_due."""
    endpoint = add_endpoint(user, receiver.url, ["payment.succeeded"])
    stop = threading.Event()
    thread = threading.Thread(target=webhook_delivery.run_local, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # listening
        with pytest.raises(RuntimeError), db.transaction() as conn:  # rolled back: never sent
            events.emit(conn, uuid.UUID(user.user["id"]), events.PAYMENT_SUCCEEDED, {"paymentId": "rolled-back"})
            raise RuntimeError
        started = time.monotonic()
        pay(api, user, "5")
        assert receiver.arrived.wait(5), "not delivered"
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert [json.loads(r.body)["type"] for r in receiver.received] == ["payment.succeeded"]
    assert [d["status"] for d in deliveries_of(endpoint["id"])] == ["succeeded"]


def test_a_storm_of_concurrent_debits_crossing_the_threshold_sends_one_balance_low(key_holder) -> None:
    user_id = key_holder.session.user["id"]
    credit(user_id, "20")
    key_holder.session.call("PUT", "/api/balance/alerts", {"lowBalanceThreshold": "10"})
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: call(key_holder, "0.5").status, range(32)))
    assert statuses.count(201) == 32
    low = events_of(user_id, "balance.low")
    assert len(low) == 1 and Decimal(low[0]["data"]["spendable"]) < 10 <= Decimal(low[0]["data"]["spendable"]) + 1


def test_housekeeping_purges_webhook_events_after_30_days_unless_still_being_delivered(user) -> None:
    from echo_control import housekeeping

    user_id = uuid.UUID(user.user["id"])
    add_endpoint(user, "https://hooks.example.com/old", ["payment.succeeded"])
    with db.transaction() as conn:
        done = events.emit(conn, user_id, events.PAYMENT_SUCCEEDED, {"paymentId": "old-done"})
        pending = events.emit(conn, user_id, events.PAYMENT_SUCCEEDED, {"paymentId": "old-pending"})
        fresh = events.emit(conn, user_id, events.PAYMENT_SUCCEEDED, {"paymentId": "fresh"})
        conn.execute(
            "UPDATE webhook_events SET created_at = now() - interval '31 days' WHERE id = ANY(%s)", [[done, pending]]
        )
        conn.execute(
            "UPDATE webhook_deliveries SET status = 'succeeded', next_attempt_at = NULL WHERE event_id = %s", [done]
        )
        conn.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 hour' WHERE event_id = %s", [pending]
        )
    result = housekeeping.run_housekeeping()
    assert result["webhookEventsPurged"] >= 1
    assert {e["id"] for e in events_of(user.user["id"])} == {pending, fresh}


def test_in_the_cloud_the_sealing_key_must_come_from_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from echo_control.errors import ConfigurationError

    monkeypatch.setenv("DB_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:db")
    monkeypatch.delenv("ECHO_WEBHOOK_KEY", raising=False)
    with pytest.raises(ConfigurationError):
        webhook_delivery.seal(uuid.uuid4(), webhook_delivery.new_secret())
    monkeypatch.setenv("ECHO_WEBHOOK_KEY", "too short")
    with pytest.raises(ConfigurationError):
        webhook_delivery.seal(uuid.uuid4(), webhook_delivery.new_secret())
    monkeypatch.setenv("ECHO_WEBHOOK_KEY", "k" * 40)
    endpoint = uuid.uuid4()
    sealed = webhook_delivery.seal(endpoint, "whsec_abc")
    assert webhook_delivery.unseal(endpoint, sealed) == "whsec_abc"
