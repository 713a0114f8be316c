"""Customers: an app open to customers lets any signed-in user make a key for it; their calls debit their own balance,
they see the app's public view only, and its owner sees them in the customers list."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from conftest import Api, Session, credit

from tests.invariants import markup_not_earned, unreconciled_balances, unreconciled_earnings

CALL = {"model": "gpt-4o", "inputTokens": 100, "outputTokens": 50, "cost": "0.010000"}
PUBLIC_FIELDS = {"id", "name", "description", "markup"}


@pytest.fixture(autouse=True)
def reconciled() -> Any:
    yield
    assert unreconciled_balances() == []
    assert unreconciled_earnings() == []
    assert markup_not_earned() == []


@pytest.fixture
def open_app(user: Session) -> dict[str, Any]:
    return user.create_app("Open app", description="Answers questions", markup="1.5", acceptsCustomers=True)


def balance(session: Session) -> Decimal:
    return Decimal(session.call("GET", "/api/balance").body["balance"])


def test_accepts_customers_is_false_by_default_and_the_owner_sets_it(user: Session) -> None:
    app = user.create_app("Closed")
    assert app["acceptsCustomers"] is False
    opened = user.call("PUT", f"/api/echo-apps/{app['id']}", {"acceptsCustomers": True})
    assert opened.status == 200 and opened.body["acceptsCustomers"] is True
    assert user.call("GET", f"/api/echo-apps/{app['id']}").body["acceptsCustomers"] is True
    assert user.call("GET", "/api/echo-apps").body["echoApps"][0]["acceptsCustomers"] is True
    for bad in (None, "yes", 1):
        assert user.call("PUT", f"/api/echo-apps/{app['id']}", {"acceptsCustomers": bad}).status == 422
    assert user.call("POST", "/api/echo-apps", {"name": "x", "acceptsCustomers": "true"}).status == 422


def test_another_users_key_request_stays_404_for_an_app_that_does_not_accept_customers(
    user: Session, other_user: Session
) -> None:
    app = user.create_app("Private")
    reply = other_user.call("POST", "/api/api-keys", {"echoAppId": app["id"]})
    assert reply.status == 404 and reply.error_code == "not_found"
    assert other_user.call("GET", f"/api/echo-apps/{app['id']}").status == 404
    assert user.call("GET", f"/api/echo-apps/{app['id']}/customers").body == {"customers": []}


def test_a_customer_pays_for_their_own_calls_and_sees_them_in_their_history(
    api: Api, user: Session, other_user: Session, open_app: dict[str, Any]
) -> None:
    key = other_user.create_key(open_app["id"], name="my laptop")
    assert key["userId"] == other_user.user["id"] and key["echoAppId"] == open_app["id"]
    credit(other_user.user["id"], "1")
    credit(user.user["id"], "1")
    reply = api.call("POST", "/api/transactions", key["key"], CALL)
    assert reply.status == 201, reply.body
    assert reply.body["userId"] == other_user.user["id"]
    split = (reply.body["providerCost"], reply.body["markupAmount"], reply.body["cost"])
    assert split == ("0.010000", "0.005000", "0.015000")
    assert balance(other_user) == Decimal("0.985") and balance(user) == Decimal(1)  # the customer paid

    mine = other_user.call("GET", "/api/transactions").body["transactions"]
    assert [t["id"] for t in mine] == [reply.body["id"]]
    narrowed = other_user.call("GET", "/api/transactions", query={"echoAppId": open_app["id"]}).body
    assert [t["id"] for t in narrowed["transactions"]] == [reply.body["id"]]
    # the owner's own history holds only the owner's calls; the app's history (owner only) holds every call to it
    assert user.call("GET", "/api/transactions").body["transactions"] == []
    app_history = user.call("GET", "/api/transactions", query={"echoAppId": open_app["id"]}).body
    assert [t["userId"] for t in app_history["transactions"]] == [other_user.user["id"]]
    # the app's usage is the owner's to see, and counts the customer's call
    usage = user.call("GET", f"/api/echo-apps/{open_app['id']}/usage").body
    assert usage["totals"]["calls"] == 1 and usage["totals"]["cost"] == "0.015000"
    csv = other_user.call("GET", "/api/transactions/export", query={"echoAppId": open_app["id"]}).body
    assert reply.body["id"] in csv


def test_a_customer_sees_the_public_view_only(api: Api, user: Session, other_user: Session, open_app: Any) -> None:
    key = other_user.create_key(open_app["id"])["key"]
    for caller in (other_user.token, key):
        view = api.call("GET", f"/api/echo-apps/{open_app['id']}", caller)
        assert view.status == 200
        assert view.body == {
            "id": open_app["id"],
            "name": "Open app",
            "description": "Answers questions",
            "markup": "1.5000",
        }
    me = api.call("GET", "/api/me", key).body
    assert set(me["echoApp"]) == PUBLIC_FIELDS
    for path in ("usage", "customers", "earnings"):
        assert other_user.call("GET", f"/api/echo-apps/{open_app['id']}/{path}").status == 404, path
    assert other_user.call("PUT", f"/api/echo-apps/{open_app['id']}", {"name": "mine"}).status == 404
    assert other_user.call("GET", "/api/echo-apps").body["echoApps"] == []  # it is not theirs
    # the owner's view is whole, and lists only the owner's keys
    owner_view = user.call("GET", f"/api/echo-apps/{open_app['id']}").body
    assert owner_view["apiKeys"] == [] and "usageByModel" in owner_view


def test_anyone_signed_in_may_see_an_open_apps_public_view_before_joining(
    api: Api, other_user: Session, open_app: Any
) -> None:
    assert set(other_user.call("GET", f"/api/echo-apps/{open_app['id']}").body) == PUBLIC_FIELDS
    assert api.call("GET", f"/api/echo-apps/{open_app['id']}").status == 401


def test_the_owner_lists_customers_with_their_calls_and_spend(api: Api, user: Session, open_app: Any) -> None:
    first, second = api.sign_in(), api.sign_in()
    keys = {}
    for customer in (first, second):
        keys[customer.user["id"]] = customer.create_key(open_app["id"])["key"]
        credit(customer.user["id"], "1")
    first.create_key(open_app["id"])  # a second key: still one customer, first seen at the first key
    for _ in range(3):
        assert api.call("POST", "/api/transactions", keys[first.user["id"]], CALL).status == 201
    listed = user.call("GET", f"/api/echo-apps/{open_app['id']}/customers")
    assert listed.status == 200
    by_id = {c["userId"]: c for c in listed.body["customers"]}
    assert set(by_id) == {first.user["id"], second.user["id"]}
    assert by_id[first.user["id"]]["email"] == first.user["email"]
    assert (by_id[first.user["id"]]["calls"], by_id[first.user["id"]]["spent"]) == (3, "0.045000")
    assert (by_id[second.user["id"]]["calls"], by_id[second.user["id"]]["spent"]) == (0, "0.000000")
    assert [c["userId"] for c in listed.body["customers"]] == [second.user["id"], first.user["id"]]  # newest first
    assert all(c["firstSeen"] for c in listed.body["customers"])
    # the owner's own key makes no customer of the owner
    user.create_key(open_app["id"])
    assert len(user.call("GET", f"/api/echo-apps/{open_app['id']}/customers").body["customers"]) == 2


def test_closing_the_app_stops_new_customers_but_not_existing_ones(
    api: Api, user: Session, other_user: Session, open_app: Any
) -> None:
    key = other_user.create_key(open_app["id"])["key"]
    credit(other_user.user["id"], "1")
    assert user.call("PUT", f"/api/echo-apps/{open_app['id']}", {"acceptsCustomers": False}).status == 200
    newcomer = api.sign_in()
    assert newcomer.call("POST", "/api/api-keys", {"echoAppId": open_app["id"]}).status == 404
    assert newcomer.call("GET", f"/api/echo-apps/{open_app['id']}").status == 404
    assert api.call("POST", "/api/transactions", key, CALL).status == 201  # an existing customer goes on
    assert other_user.call("POST", "/api/api-keys", {"echoAppId": open_app["id"]}).status == 201
    assert set(other_user.call("GET", f"/api/echo-apps/{open_app['id']}").body) == PUBLIC_FIELDS


def test_an_inactive_app_takes_no_new_customers(user: Session, other_user: Session, open_app: Any) -> None:
    user.call("PUT", f"/api/echo-apps/{open_app['id']}", {"isActive": False})
    assert other_user.call("POST", "/api/api-keys", {"echoAppId": open_app["id"]}).status == 404


def test_concurrent_first_keys_make_one_customer(api: Api, other_user: Session, open_app: Any, user: Session) -> None:
    barrier = threading.Barrier(10)

    def create(_: int) -> int:
        barrier.wait(timeout=10)
        return (
            Api(api.client.application)
            .call("POST", "/api/api-keys", other_user.token, {"echoAppId": open_app["id"]})
            .status
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert list(pool.map(create, range(10))) == [201] * 10
    customers = user.call("GET", f"/api/echo-apps/{open_app['id']}/customers").body["customers"]
    assert [c["userId"] for c in customers] == [other_user.user["id"]]
    assert len(other_user.call("GET", "/api/api-keys").body["apiKeys"]) == 10


def test_a_customer_buys_credits_from_an_app_they_use_and_nobody_else_does(
    user: Session, other_user: Session, open_app: Any, api: Api
) -> None:
    other_user.create_key(open_app["id"])
    reply = other_user.call("POST", "/api/stripe/payment-link", {"amount": "5", "echoAppId": open_app["id"]})
    assert reply.status == 201 and reply.body["payment"]["echoAppId"] == open_app["id"]
    stranger = api.sign_in()
    assert stranger.call("POST", "/api/stripe/payment-link", {"amount": "5", "echoAppId": open_app["id"]}).status == 404
    private = user.create_app("Private")
    refused = other_user.call("POST", "/api/stripe/payment-link", {"amount": "5", "echoAppId": private["id"]})
    assert refused.status == 404
    assert stranger.call("GET", "/api/transactions", query={"echoAppId": open_app["id"]}).status == 404


def test_a_customer_revokes_their_own_key_and_the_owner_cannot(
    api: Api, user: Session, other_user: Session, open_app: Any
) -> None:
    key = other_user.create_key(open_app["id"])
    assert user.call("DELETE", f"/api/api-keys/{key['id']}").status == 404
    assert other_user.call("DELETE", f"/api/api-keys/{key['id']}").status == 200
    assert api.call("GET", "/api/balance", key["key"]).status == 401


def test_an_unknown_or_malformed_app_is_404_for_customers_list(user: Session) -> None:
    for target in (str(uuid.uuid4()), "not-a-uuid"):
        assert user.call("GET", f"/api/echo-apps/{target}/customers").status == 404
