"""Payouts through Stripe Connect (Express), with the real `stripe` SDK against a fake Stripe on loopback: onboarding,
account.updated, payouts and their limits, duplicate and concurrent requests (one transfer), refused and lost
transfers, reversals (money back once), and a payout racing new earnings. The mock onboarding stands in locally."""

import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import Api, Session, credit
from fake_stripe import SECRET_KEY, FakeStripe

from echo_control import config, payments
from tests.invariants import markup_not_earned, unreconciled_balances, unreconciled_earnings

PLATFORM_SECRET = "whsec_platform_test"
CONNECT_SECRET = "whsec_connect_test"


@pytest.fixture(autouse=True)
def reconciled() -> Iterator[None]:
    yield
    assert unreconciled_earnings() == []
    assert unreconciled_balances() == []
    assert markup_not_earned() == []


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", fake.url)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", PLATFORM_SECRET)
    monkeypatch.setenv("STRIPE_CONNECT_WEBHOOK_SECRET", CONNECT_SECRET)
    yield fake
    fake.stop()


def send_event(api: Api, event_type: str, obj: dict[str, Any], secret: str, event_id: str | None = None) -> Any:
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": event_type,
        "data": {"object": obj},
    }
    if event_type.startswith("account.") and isinstance(obj.get("id"), str):
        event["account"] = obj["id"]  # a Connect event comes from the connected account it is about
    payload = json.dumps(event)
    reply = api.call(
        "POST",
        "/api/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": payments.sign_payload(payload, secret)},
    )
    assert reply.status == 200, reply.body
    return reply.body


def owner_earning(api: Api, amount: str) -> Session:
    """An owner whose app (markup ×2) earned `amount` from a customer's call."""
    owner = api.sign_in()
    app = owner.create_app("Paying app", markup="2", acceptsCustomers=True)
    customer = api.sign_in()
    key = customer.create_key(app["id"])["key"]
    credit(customer.user["id"], str(Decimal(amount) * 2))
    reply = api.call(
        "POST", "/api/transactions", key, {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1, "cost": amount}
    )
    assert reply.status == 201, reply.body
    return owner


def onboard(api: Api, owner: Session, secret: str = CONNECT_SECRET) -> str:
    reply = owner.call("POST", "/api/payouts/account")
    assert reply.status == 200, reply.body
    account = reply.body["accountId"]
    send_event(api, "account.updated", {"id": account, "object": "account", "payouts_enabled": True}, secret)
    return account


def earnings(owner: Session) -> dict[str, Any]:
    return owner.call("GET", "/api/earnings").body


def payout(owner: Session, amount: str, key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return owner.call("POST", "/api/payouts", {"amount": amount}, headers=headers)


def test_onboarding_makes_one_express_account_and_links_to_stripe(api: Api, stripe: FakeStripe) -> None:
    owner = api.sign_in()
    first = owner.call("POST", "/api/payouts/account", headers={"Host": "127.0.0.1:3111"})
    assert first.status == 200, first.body
    assert first.body["url"].startswith("https://connect.stripe.com/setup/e/acct_fake")
    assert first.body["payoutsEnabled"] is False
    [created] = stripe.posts("/v1/accounts")
    assert created["form"]["type"] == "express"
    assert created["form"]["capabilities[transfers][requested]"] == "true"
    assert created["form"]["metadata[userId]"] == owner.user["id"]
    assert created["form"]["email"] == owner.user["email"]
    assert created["idempotency_key"] == f"connect-account-{owner.user['id']}"
    [link] = stripe.posts("/v1/account_links")
    assert link["form"]["account"] == first.body["accountId"] and link["form"]["type"] == "account_onboarding"
    assert link["form"]["return_url"] == "http://127.0.0.1:3111/earnings?onboarding=return"
    assert link["form"]["refresh_url"] == "http://127.0.0.1:3111/earnings?onboarding=refresh"
    again = owner.call("POST", "/api/payouts/account")
    assert again.body["accountId"] == first.body["accountId"]
    assert len(stripe.posts("/v1/accounts")) == 1 and len(stripe.posts("/v1/account_links")) == 2  # reused


def test_concurrent_first_onboardings_keep_one_account(api: Api, stripe: FakeStripe) -> None:
    owner = api.sign_in()
    barrier = threading.Barrier(8)

    def start(_: int) -> str:
        barrier.wait(timeout=10)
        reply = Api(api.client.application).call("POST", "/api/payouts/account", owner.token)
        assert reply.status == 200, reply.body
        return str(reply.body["accountId"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        accounts = set(pool.map(start, range(8)))
    assert len(accounts) == 1 and len(stripe.accounts) == 1


def test_account_updated_with_payouts_enabled_marks_the_owner_payable(api: Api, stripe: FakeStripe) -> None:
    owner = api.sign_in()
    account = owner.call("POST", "/api/payouts/account").body["accountId"]
    assert earnings(owner)["payoutsEnabled"] is False
    event_id = f"evt_{uuid.uuid4().hex}"
    enabled = {"id": account, "object": "account", "payouts_enabled": True}
    assert send_event(api, "account.updated", enabled, CONNECT_SECRET, event_id) == {"received": True, "applied": True}
    assert earnings(owner)["payoutsEnabled"] is True
    assert send_event(api, "account.updated", enabled, CONNECT_SECRET, event_id)["applied"] is False  # redelivered
    disabled = {"id": account, "object": "account", "payouts_enabled": False}
    send_event(api, "account.updated", disabled, CONNECT_SECRET)
    assert earnings(owner)["payoutsEnabled"] is False
    # an account we never made, and odd shapes, change nothing and never fail
    for odd in ({"id": "acct_unknown", "payouts_enabled": True}, {"payouts_enabled": True}, {"id": 7}):
        assert send_event(api, "account.updated", odd, CONNECT_SECRET)["applied"] is False
    payload = json.dumps({"id": "evt_forged", "type": "account.updated", "data": {"object": enabled}})
    forged = api.call(
        "POST",
        "/api/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": payments.sign_payload(payload, "whsec_x")},
    )
    assert forged.status == 400 and forged.error_code == "invalid_signature"
    assert earnings(owner)["payoutsEnabled"] is False


def test_a_payout_transfers_to_the_connected_account(api: Api, stripe: FakeStripe) -> None:
    owner = owner_earning(api, "25")
    account = onboard(api, owner)
    reply = payout(owner, "10.00", key="first-payout")
    assert reply.status == 201, reply.body
    assert (reply.body["amount"], reply.body["status"]) == ("10.000000", "paid")
    [transfer] = stripe.posts("/v1/transfers")
    assert transfer["idempotency_key"] == reply.body["id"]  # the SDK's idempotency key is our payout id
    assert transfer["form"]["amount"] == "1000" and transfer["form"]["currency"] == "usd"
    assert transfer["form"]["destination"] == account
    assert transfer["form"]["metadata[payoutId]"] == reply.body["id"]
    assert reply.body["stripeTransferId"] in stripe.transfers
    figures = earnings(owner)
    assert (figures["available"], figures["pending"], figures["paidOut"], figures["lifetime"]) == (
        "15.000000",
        "0.000000",
        "10.000000",
        "25.000000",
    )
    listed = owner.call("GET", "/api/payouts").body["payouts"]
    assert [(p["id"], p["status"]) for p in listed] == [(reply.body["id"], "paid")]
    assert api.sign_in().call("GET", "/api/payouts").body["payouts"] == []  # nobody else's


def test_payout_limits(api: Api, stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = owner_earning(api, "12")
    not_onboarded = payout(owner, "10")
    assert not_onboarded.status == 409 and not_onboarded.error_code == "payouts_not_enabled"
    onboard(api, owner)
    below = payout(owner, "9.99")
    assert below.status == 422 and below.error_code == "below_minimum_payout"
    above = payout(owner, "12.01")
    assert above.status == 402 and above.error_code == "insufficient_earnings"
    assert above.body["error"]["details"] == {"available": "12.000000"}
    for bad in ("10.001", "-10", "abc", "1000000.01", None):
        assert payout(owner, bad).status == 422, bad  # type: ignore[arg-type]
    assert owner.call("POST", "/api/payouts", {"amount": "10", "extra": 1}).status == 422
    assert stripe.posts("/v1/transfers") == []
    monkeypatch.setenv("ECHO_MIN_PAYOUT_USD", "5")
    assert earnings(owner)["minimumPayout"] == "5"
    assert payout(owner, "5").status == 201
    assert payout(owner, "7").status == 201  # everything available: 12
    assert payout(owner, "5").status == 402
    assert api.call("POST", "/api/payouts", json_body={"amount": "10"}).status == 401


def test_a_repeated_idempotency_key_answers_the_same_payout_and_another_amount_is_409(
    api: Api, stripe: FakeStripe
) -> None:
    owner = owner_earning(api, "30")
    onboard(api, owner)
    first = payout(owner, "10", key="same")
    again = payout(owner, "10.00", key="same")
    assert again.status == 201 and again.body == first.body and again.headers["Idempotent-Replayed"] == "true"
    other = payout(owner, "11", key="same")
    assert other.status == 409 and other.error_code == "idempotency_key_reused"
    assert len(stripe.transfers) == 1 and earnings(owner)["available"] == "20.000000"
    assert payout(api.sign_in(), "10", key="same").status == 409  # keys are per user: this one is not onboarded


def test_concurrent_requests_with_one_key_make_exactly_one_transfer(api: Api, stripe: FakeStripe) -> None:
    owner = owner_earning(api, "30")
    onboard(api, owner)
    stripe.transfer_delay = 0.2  # the first transfer is still in flight when the others arrive
    barrier = threading.Barrier(16)

    def send(_: int) -> Any:
        barrier.wait(timeout=10)
        return Api(api.client.application).call(
            "POST", "/api/payouts", owner.token, {"amount": "10"}, headers={"Idempotency-Key": "storm"}
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(send, range(16)))
    assert {r.status for r in replies} == {201}, [r.body for r in replies]
    assert len({r.body["id"] for r in replies}) == 1
    assert len(stripe.transfers) == 1  # Stripe made one transfer, whatever number of requests reached it
    assert {r["idempotency_key"] for r in stripe.posts("/v1/transfers")} == {replies[0].body["id"]}
    figures = earnings(owner)
    assert (figures["available"], figures["paidOut"], figures["pending"]) == ("20.000000", "10.000000", "0.000000")


def test_concurrent_payouts_with_different_keys_never_take_more_than_available(api: Api, stripe: FakeStripe) -> None:
    owner = owner_earning(api, "25")
    onboard(api, owner)
    barrier = threading.Barrier(10)

    def send(i: int) -> int:
        barrier.wait(timeout=10)
        reply = Api(api.client.application).call(
            "POST", "/api/payouts", owner.token, {"amount": "10"}, headers={"Idempotency-Key": f"k{i}"}
        )
        return reply.status

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(send, range(10)))
    assert sorted(statuses) == [201, 201] + [402] * 8
    assert len(stripe.transfers) == 2
    assert earnings(owner)["available"] == "5.000000"


def test_a_refused_transfer_returns_the_money_once(api: Api, stripe: FakeStripe) -> None:
    owner = owner_earning(api, "20")
    onboard(api, owner)
    stripe.transfer_mode = "refuse"
    refused = payout(owner, "15", key="refused")
    assert refused.status == 201 and refused.body["status"] == "failed"
    assert refused.body["amountReturned"] == "15.000000" and refused.body["failureReason"] == "Insufficient funds"
    assert earnings(owner)["available"] == "20.000000"
    assert payout(owner, "15", key="refused").body["status"] == "failed"  # replayed: not tried again
    assert len(stripe.posts("/v1/transfers")) == 1
    stripe.transfer_mode = "ok"
    assert payout(owner, "15", key="after-top-up").body["status"] == "paid"
    assert earnings(owner)["available"] == "5.000000"


def test_a_lost_answer_leaves_the_payout_pending_until_a_retry_completes_it(api: Api, stripe: FakeStripe) -> None:
    owner = owner_earning(api, "20")
    onboard(api, owner)
    stripe.transfer_mode = "lose"
    lost = payout(owner, "10", key="lost")
    assert lost.status == 502 and lost.error_code == "transfer_pending"
    payout_id = lost.body["error"]["details"]["payoutId"]
    figures = earnings(owner)
    assert (figures["available"], figures["pending"], figures["paidOut"]) == ("10.000000", "10.000000", "0.000000")
    assert owner.call("GET", "/api/payouts").body["payouts"][0]["status"] == "pending"
    assert payout(owner, "10", key="another").status == 502  # Stripe is still not answering
    stripe.transfer_mode = "ok"
    retried = payout(owner, "10", key="lost")
    assert retried.status == 201 and retried.body["id"] == payout_id and retried.body["status"] == "paid"
    assert payout(owner, "10", key="another").body["status"] == "paid"
    assert len(stripe.transfers) == 2  # one per payout, however many times each was asked for
    figures = earnings(owner)
    assert (figures["available"], figures["pending"], figures["paidOut"]) == ("0.000000", "0.000000", "20.000000")


def test_payouts_left_pending_are_asked_for_again_by_a_scheduled_retry(api: Api, stripe: FakeStripe) -> None:
    from echo_control import payouts

    owner = owner_earning(api, "20")
    onboard(api, owner)
    stripe.transfer_mode = "lose"
    payout_id = payout(owner, "10", key="left").body["error"]["details"]["payoutId"]
    assert payout_id not in [p.id for p in payouts.retry_pending(older_than_seconds=3600)]  # too recent to retry
    assert payout_id not in [p.id for p in payouts.retry_pending(older_than_seconds=0)]  # Stripe still silent
    stripe.transfer_mode = "ok"
    retried = [p for p in payouts.retry_pending(older_than_seconds=0) if p.id == payout_id]
    assert [p.status for p in retried] == ["paid"]
    assert [t["metadata"]["payoutId"] for t in stripe.transfers.values()].count(payout_id) == 1
    figures = earnings(owner)
    assert (figures["pending"], figures["paidOut"]) == ("0.000000", "10.000000")


def test_the_payout_form_offers_to_try_a_pending_payout_again(api: Api, stripe: FakeStripe) -> None:
    owner = owner_earning(api, "20")
    onboard(api, owner)
    stripe.transfer_mode = "lose"
    session = {"Cookie": f"echo_session={owner.token}", "Origin": "http://localhost", "Host": "localhost"}
    form = {**session, "Content-Type": "application/x-www-form-urlencoded"}
    posted = api.call("POST", "/earnings/payouts", data="amount=10&idempotencyKey=page-key", headers=form)
    assert posted.status == 303 and posted.headers["Location"] == "/earnings"
    flash = posted.headers["Set-Cookie"].split(";", 1)[0]
    page = api.call("GET", "/earnings", headers={**session, "Cookie": f"{session['Cookie']}; {flash}"})
    assert "Stripe has not confirmed this payout yet" in page.body
    assert 'id="retry-payout"' in page.body and 'value="page-key"' in page.body and 'value="10.00"' in page.body
    stripe.transfer_mode = "ok"
    again = api.call("POST", "/earnings/payouts", data="amount=10.00&idempotencyKey=page-key", headers=form)
    assert again.status == 303
    [paid] = owner.call("GET", "/api/payouts").body["payouts"]
    assert paid["status"] == "paid" and len(stripe.transfers) == 1


def test_transfer_reversed_returns_the_money_to_available_once(api: Api, stripe: FakeStripe) -> None:
    owner = owner_earning(api, "30")
    onboard(api, owner)
    paid = payout(owner, "20", key="to-reverse").body
    transfer = {**stripe.transfers[paid["stripeTransferId"]], "reversed": False, "amount_reversed": 500}
    event_id = f"evt_{uuid.uuid4().hex}"
    assert send_event(api, "transfer.reversed", transfer, PLATFORM_SECRET, event_id)["applied"] is True
    assert send_event(api, "transfer.reversed", transfer, PLATFORM_SECRET, event_id)["applied"] is False
    assert send_event(api, "transfer.reversed", transfer, PLATFORM_SECRET)["applied"] is False  # same total again
    partly = owner.call("GET", "/api/payouts").body["payouts"][0]
    assert (partly["status"], partly["amountReturned"]) == ("paid", "5.000000")
    assert (earnings(owner)["available"], earnings(owner)["paidOut"]) == ("15.000000", "15.000000")
    whole = {**transfer, "reversed": True, "amount_reversed": 2000}
    assert send_event(api, "transfer.reversed", whole, CONNECT_SECRET)["applied"] is True
    assert (
        send_event(api, "transfer.reversed", {**whole, "amount_reversed": 99999}, PLATFORM_SECRET)["applied"] is False
    )
    reversed_payout = owner.call("GET", "/api/payouts").body["payouts"][0]
    assert (reversed_payout["status"], reversed_payout["amountReturned"]) == ("reversed", "20.000000")
    figures = earnings(owner)
    assert (figures["available"], figures["paidOut"], figures["lifetime"]) == ("30.000000", "0.000000", "30.000000")
    unknown = {"id": "tr_unknown", "object": "transfer", "amount_reversed": 100, "metadata": {"payoutId": "nope"}}
    assert send_event(api, "transfer.reversed", unknown, PLATFORM_SECRET)["applied"] is False


def test_a_failed_transfer_event_returns_the_whole_payout(api: Api, stripe: FakeStripe) -> None:
    owner = owner_earning(api, "10")
    onboard(api, owner)
    paid = payout(owner, "10").body
    failed = {"id": paid["stripeTransferId"], "object": "transfer", "metadata": {"payoutId": paid["id"]}}
    assert send_event(api, "transfer.failed", failed, PLATFORM_SECRET)["applied"] is True
    assert send_event(api, "transfer.failed", failed, PLATFORM_SECRET)["applied"] is False
    assert earnings(owner)["available"] == "10.000000"


def test_a_reversal_of_a_pending_payouts_transfer_completes_it_then_returns_it(api: Api, stripe: FakeStripe) -> None:
    owner = owner_earning(api, "10")
    onboard(api, owner)
    stripe.transfer_mode = "lose"
    payout_id = payout(owner, "10", key="pending").body["error"]["details"]["payoutId"]
    [transfer] = stripe.transfers.values()  # made, though we never heard back
    send_event(api, "transfer.reversed", {**transfer, "reversed": True, "amount_reversed": 1000}, PLATFORM_SECRET)
    stripe.transfer_mode = "ok"
    replayed = payout(owner, "10", key="pending").body
    assert (replayed["id"], replayed["status"], replayed["stripeTransferId"]) == (payout_id, "reversed", transfer["id"])
    assert len(stripe.posts("/v1/transfers")) == 3  # the SDK's retries of the lost one; the replay asked nothing
    assert earnings(owner)["available"] == "10.000000"


def test_a_payout_racing_new_earnings(api: Api, stripe: FakeStripe) -> None:
    """Customers' calls credit the owner's account while payouts take from it: nothing is lost or made up."""
    owner = api.sign_in()
    app = owner.create_app("Busy", markup="1.5", acceptsCustomers=True)
    keys = []
    for _ in range(6):
        customer = api.sign_in()
        keys.append(customer.create_key(app["id"])["key"])
        credit(customer.user["id"], "100")
    seed = api.call(
        "POST", "/api/transactions", keys[0], {"model": "m", "inputTokens": 1, "outputTokens": 1, "cost": "60"}
    )
    assert seed.status == 201  # earns 30
    onboard(api, owner)
    stripe.transfer_delay = 0.05

    def work(i: int) -> tuple[str, Any]:
        client = Api(api.client.application)
        if i % 10 == 0:
            reply = client.call(
                "POST", "/api/payouts", owner.token, {"amount": "10"}, headers={"Idempotency-Key": f"race-{i}"}
            )
            return "payout", reply
        body = {"model": "m", "inputTokens": 1, "outputTokens": 1, "cost": "0.123457"}
        return "call", client.call("POST", "/api/transactions", keys[i % len(keys)], body)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(work, range(120)))
    earned = sum(
        (Decimal(r.body["markupAmount"]) for kind, r in results if kind == "call" and r.status == 201), Decimal(0)
    )
    paid = [r for kind, r in results if kind == "payout" and r.status == 201]
    assert all(r.body["status"] == "paid" for r in paid) and len(paid) >= 3
    assert {r.status for kind, r in results if kind == "payout"} <= {201, 402}
    figures = earnings(owner)
    assert Decimal(figures["lifetime"]) == Decimal(30) + earned
    assert Decimal(figures["paidOut"]) == Decimal(10) * len(paid) == Decimal(len(stripe.transfers) * 10)
    assert Decimal(figures["available"]) == Decimal(30) + earned - Decimal(10) * len(paid)


# --- without a Stripe key: the mock onboarding -----------------------------------------------------------


def post_form(url: str, origin: str, data: str = "") -> Any:
    request = urllib.request.Request(
        url,
        data=data.encode(),
        headers={"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    try:
        return urllib.request.build_opener(NoRedirect).open(request, timeout=10)
    except urllib.error.HTTPError as answer:  # the 303 itself
        return answer


def test_the_mock_onboarding_sends_a_signed_account_updated(api: Api, live_server: str) -> None:
    owner = owner_earning(api, "12")
    host = urlparse(live_server).netloc
    started = owner.call("POST", "/api/payouts/account", headers={"Host": host})
    assert started.status == 200
    url = urlparse(started.body["url"])
    assert (url.scheme, url.netloc) == ("http", host) and url.path == f"/connect/mock/{started.body['accountId']}"
    assert parse_qs(url.query) == {"return": ["/earnings"]}
    with urllib.request.urlopen(started.body["url"], timeout=10) as page:
        assert "Finish onboarding" in page.read().decode()
    done = post_form(f"{live_server}{url.path}/complete", live_server, "return=%2Fearnings")
    assert done.status == 303 and done.headers["Location"] == "/earnings?onboarding=complete"
    assert earnings(owner)["payoutsEnabled"] is True
    mock_paid = payout(owner, "10")
    assert mock_paid.body["status"] == "paid" and mock_paid.body["stripeTransferId"].startswith("tr_mock_")
    assert api.call("GET", "/connect/mock/acct_mock_unknown").status == 404
    assert api.call("GET", "/connect/mock/acct_real").status == 404


def test_the_mock_onboarding_is_refused_with_a_stripe_key_or_in_the_cloud(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = api.sign_in()
    account = owner.call("POST", "/api/payouts/account").body["accountId"]
    assert api.call("GET", f"/connect/mock/{account}").status == 200
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    assert api.call("GET", f"/connect/mock/{account}").status == 404
    monkeypatch.delenv("STRIPE_SECRET_KEY")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "echo-CompleteMockOnboardingFunction")
    completed = api.call(
        "POST",
        f"/connect/mock/{account}/complete",
        data="",
        headers={"Origin": "http://localhost", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert completed.status == 404
    assert config.settings().in_cloud
