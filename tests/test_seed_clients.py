"""The seed's own clients, wire for wire: the original Echo proxy (echo-server) and @echo/typescript-sdk 1.0.0 of
Merit-Systems/echo at ee4232f4 (2025-06-04), replayed over HTTP against the running API.

What each request looks like comes from that commit's source:
- echo-server/src/services/EchoControlService.ts: `fetch` POST /api/validate-api-key `{apiKey}`; the SDK's
  getBalance() (it reads `balance.balance` and refuses the call when `balance <= 0`) and createTransaction();
- echo-server/src/providers/{GPT,AnthropicGPT,AnthropicNative}Provider.ts: the transaction bodies, with `cost` as a
  JavaScript number (`total_tokens * 0.001`, `* 0.015`), so 18 * 0.001 arrives as 0.018000000000000002;
- echo-typescript-sdk/src/client.ts and types.ts: axios with `Authorization: Bearer <key>`; it reads
  `{transaction}`, `{echoApps}`, `{echoApp: {stats, recentTransactions}}`, `{paymentLink: {url}}`, `totalCredits`,
  and errors as `response.data.error` (echo-cli prints them as text).
"""

import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import requests
from conftest import Session, credit

from echo_control import pricing
from tests.invariants import unreconciled_balances

AXIOS_HEADERS = {"Accept": "application/json, text/plain, */*", "User-Agent": "axios/1.6.0"}
FETCH_HEADERS = {"accept": "*/*", "user-agent": "node"}


def js_cost(tokens: int, rate: float) -> float:
    """The cost as the proxy computes it: IEEE doubles, exactly as JavaScript multiplies them."""
    return tokens * rate


# (provider file, body) as each provider of echo-server sends it after a proxied call
PROXIED_CALLS: list[tuple[str, dict[str, Any]]] = [
    (
        "GPTProvider.ts",
        {
            "model": "gpt-4o",
            "inputTokens": 12,
            "outputTokens": 6,
            "totalTokens": 18,
            "cost": js_cost(18, 0.001),
            "status": "success",
        },
    ),
    (
        "AnthropicGPTProvider.ts",
        {
            "model": "claude-3-5-sonnet-20240620",
            "inputTokens": 40,
            "outputTokens": 13,
            "totalTokens": 53,
            "cost": js_cost(53, 0.015),
            "status": "success",
        },
    ),
    (
        "AnthropicNativeProvider.ts",
        {
            "model": "claude-3-5-sonnet-20240620",
            "inputTokens": 0,
            "outputTokens": 7,
            "totalTokens": 7,
            "cost": js_cost(7, 0.015),
            "status": "success",
        },
    ),
    (
        "CreateLlmTransactionRequest with the optional fields (types.ts)",
        {
            "model": "gpt-4o",
            "inputTokens": 1200,
            "outputTokens": 300,
            "totalTokens": 1500,
            "cost": 0.018000000000000002,
            "prompt": "Say hello in French.",
            "response": "Bonjour !",
            "status": "success",
            "errorMessage": "",
        },
    ),
]


def half_up_micro(value: float) -> Decimal:
    """What the cost must become: the JSON text's decimal digits, rounded half-up to 6 places."""
    return Decimal(json.dumps(value)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


@pytest.fixture
def seed_key(user: Session) -> tuple[Session, dict[str, Any], str]:
    app = user.create_app("Proxied app", markup="1.25")
    key = user.create_key(app["id"])["key"]
    credit(user.user["id"], "20")
    return user, app, key


@pytest.fixture
def customer_seed_key(user: Session) -> tuple[Session, dict[str, Any], str]:
    """A customer's key for the proxied app: its markup applies (an owner's own calls carry none)."""
    app = user.create_app("Proxied app", markup="1.25", acceptsCustomers=True)
    customer, key = user.customer_of(app, "20")
    return customer, app, key


def test_the_seed_proxy_bills_every_proxied_call_exactly_once(live_server: str, customer_seed_key) -> None:
    user, app, key = customer_seed_key
    axios = {**AXIOS_HEADERS, "Authorization": f"Bearer {key}"}
    expected_spent = Decimal(0)
    for provider, body in PROXIED_CALLS:
        # verifyApiKey(): fetch with a JSON body, no Authorization header
        validated = requests.post(
            f"{live_server}/api/validate-api-key",
            headers={**FETCH_HEADERS, "Content-Type": "application/json"},
            data=json.dumps({"apiKey": key}),
            timeout=10,
        )
        assert validated.status_code == 200, (provider, validated.text)
        assert validated.json()["valid"] is True and validated.json()["echoAppId"] == app["id"]
        # getBalance(): the proxy goes on only while `balance <= 0` is false in JavaScript
        balance = requests.get(f"{live_server}/api/balance", headers=axios, timeout=10)
        assert balance.status_code == 200
        assert float(balance.json()["balance"]) > 0 and "totalCredits" in balance.json()
        # createTransaction(): axios posts the object as JSON and reads data.transaction
        recorded = requests.post(
            f"{live_server}/api/transactions",
            headers={**axios, "Content-Type": "application/json"},
            data=json.dumps(body),
            timeout=10,
        )
        assert recorded.status_code == 201, (provider, recorded.text)
        transaction = recorded.json()["transaction"]
        assert transaction["id"] and transaction["model"] == body["model"]
        # the proxy's cost is the provider cost; the app's markup (1.25) comes on top
        assert Decimal(transaction["providerCost"]) == half_up_micro(body["cost"]), provider
        charged = pricing.CostSplit.of(half_up_micro(body["cost"]), Decimal("1.25")).cost
        assert Decimal(transaction["cost"]) == charged, provider
        assert "prompt" not in transaction and "response" not in transaction  # accepted, not stored
        expected_spent += charged

    history = user.call("GET", "/api/transactions", query={"echoAppId": app["id"]}).body["transactions"]
    assert len(history) == len(PROXIED_CALLS)  # each call billed once
    assert sum(Decimal(t["cost"]) for t in history) == expected_spent
    after = user.call("GET", "/api/balance").body
    assert Decimal(after["balance"]) == Decimal(20) - expected_spent
    assert Decimal(after["totalSpent"]) == expected_spent
    assert Decimal(after["totalCredits"]) - Decimal(after["totalSpent"]) == Decimal(after["balance"])
    assert unreconciled_balances() == []


def serve_like_the_seed_proxy(live_server: str, key: str, body: dict[str, Any], attempts: int) -> int:
    """The original proxy's flow for each request: verifyApiKey (stop unless valid), getBalance (stop when
    `balance <= 0`), serve the call, then createTransaction. Returns how many calls it served."""
    axios = {**AXIOS_HEADERS, "Authorization": f"Bearer {key}"}
    served = 0
    for _ in range(attempts):
        validated = requests.post(
            f"{live_server}/api/validate-api-key",
            headers={**FETCH_HEADERS, "Content-Type": "application/json"},
            data=json.dumps({"apiKey": key}),
            timeout=10,
        ).json()
        if not validated["valid"]:
            continue
        balance = requests.get(f"{live_server}/api/balance", headers=axios, timeout=10).json()
        if float(balance["balance"]) <= 0:
            continue
        served += 1  # the proxy serves the call first, then records it
        recorded = requests.post(
            f"{live_server}/api/transactions",
            headers={**axios, "Content-Type": "application/json"},
            data=json.dumps(body),
            timeout=10,
        )
        assert recorded.status_code == 201, recorded.text  # a call that happened is always recorded
    return served


def test_the_seed_proxy_gets_at_most_one_call_past_a_balance_below_one_calls_cost(
    live_server: str, user: Session
) -> None:
    app = user.create_app("Proxied app")
    key = user.create_key(app["id"])["key"]
    credit(user.user["id"], "0.37")
    body = {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 5, "totalTokens": 15, "cost": 0.63}
    served = serve_like_the_seed_proxy(live_server, key, body, attempts=5)
    assert served == 1  # the one call past what was paid, and it was recorded: 0.26 is owed
    history = user.call("GET", "/api/transactions", query={"echoAppId": app["id"]}).body["transactions"]
    assert len(history) == served
    shown = user.call("GET", "/api/balance").body
    assert shown["balance"] == "-0.260000" and shown["debt"] == "0.260000" and shown["spendable"] == "0.000000"
    assert unreconciled_balances() == []


def test_the_seed_proxy_stops_at_a_used_up_key_limit_after_at_most_one_call(live_server: str, user: Session) -> None:
    app = user.create_app("Limited app")
    created = user.create_key(app["id"], spendLimit="1.00", limitPeriod="month")
    key = created["key"]
    credit(user.user["id"], "20")
    body = {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 5, "totalTokens": 15, "cost": 0.3}
    served = serve_like_the_seed_proxy(live_server, key, body, attempts=8)
    assert served == 4  # 0.90 within the limit, then one call past it (1.20), recorded; then the key is refused
    history = user.call("GET", "/api/transactions", query={"echoAppId": app["id"]}).body["transactions"]
    assert len(history) == served
    validated = requests.post(f"{live_server}/api/validate-api-key", json={"apiKey": key}, timeout=10).json()
    assert validated["valid"] is False and validated["reason"] == "key_limit_exceeded"
    assert validated["resetsAt"] is not None  # the first of next month, UTC
    assert Decimal(user.call("GET", "/api/balance").body["balance"]) == Decimal("18.80")


def test_the_seed_sdk_reads_what_it_expects(live_server: str, seed_key, other_user: Session) -> None:
    _, app, key = seed_key
    axios = {**AXIOS_HEADERS, "Authorization": f"Bearer {key}"}

    def get(path: str) -> requests.Response:
        return requests.get(f"{live_server}{path}", headers=axios, timeout=10)

    def post(path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(
            f"{live_server}{path}", headers={**axios, "Content-Type": "application/json"}, json=body, timeout=10
        )

    # createTransaction() then getEchoApp(): the app with its stats and recent transactions
    assert post("/api/transactions", PROXIED_CALLS[0][1]).status_code == 201
    balance = get("/api/balance").json()
    assert {"balance", "totalCredits", "totalSpent"} <= set(balance)
    listed = get("/api/echo-apps")
    assert listed.status_code == 200 and [a["id"] for a in listed.json()["echoApps"]] == [app["id"]]
    detail = get(f"/api/echo-apps/{app['id']}")
    assert detail.status_code == 200
    echo_app = detail.json()["echoApp"]
    assert echo_app["id"] == app["id"] and echo_app["isActive"] is True
    assert echo_app["stats"]["totalTransactions"] == 1 and echo_app["stats"]["totalTokens"] == 18
    assert [t["model"] for t in echo_app["recentTransactions"]] == ["gpt-4o"]

    # getPaymentUrl(10, appId): a numeric amount with a description, paid through the mock checkout
    link = post("/api/stripe/payment-link", {"amount": 10, "echoAppId": app["id"], "description": "Echo Credits"})
    assert link.status_code == 201, link.text
    payment_link = link.json()["paymentLink"]
    assert payment_link["amount"] == 1000 and payment_link["currency"] == "usd" and payment_link["url"]
    assert link.json()["payment"]["status"] == "pending"
    paid = requests.post(
        f"{live_server}/checkout/mock/{link.json()['sessionId']}/pay",
        headers={"Origin": live_server},
        allow_redirects=False,
        timeout=10,
    )
    assert paid.status_code == 303
    assert Decimal(get("/api/balance").json()["totalCredits"]) == Decimal(30)

    # another user's app: 404, and the error reads as text for clients that print `error` or `message`
    foreign = other_user.create_app("Not yours")
    for response in (
        get(f"/api/echo-apps/{foreign['id']}"),
        post("/api/stripe/payment-link", {"amount": 5, "echoAppId": foreign["id"]}),
    ):
        assert response.status_code == 404
        assert isinstance(response.json()["message"], str) and response.json()["message"]
        assert response.json()["error"]["code"] == "not_found"
