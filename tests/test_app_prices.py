"""An app's own prices: the models it allows and per-model overrides, read and replaced by its owner, and applied to
every call its keys record."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from conftest import Api, KeyHolder, Session, credit
from hypothesis import given, settings
from hypothesis import strategies as st

from echo_control import auth, db, pricing
from tests.invariants import rollup_mismatches, unreconciled_balances

OVERRIDE = {"model": "gpt-4o", "inputPerMillion": "1.00", "outputPerMillion": "2.00"}


@pytest.fixture(autouse=True)
def reconciled() -> None:
    yield
    assert unreconciled_balances() == []
    assert rollup_mismatches() == []


@pytest.fixture
def funded(key_holder: KeyHolder) -> KeyHolder:
    credit(key_holder.session.user["id"], "10")
    return key_holder


def prices_path(app: dict[str, Any]) -> str:
    return f"/api/echo-apps/{app['id']}/prices"


def put_prices(holder: KeyHolder, body: dict[str, Any]) -> dict[str, Any]:
    reply = holder.session.call("PUT", prices_path(holder.app), body)
    assert reply.status == 200, reply.body
    return reply.body


def transactions_of(holder: KeyHolder) -> list[dict[str, Any]]:
    return holder.session.call("GET", "/api/transactions", query={"echoAppId": holder.app["id"]}).body["transactions"]


def balance_of(holder: KeyHolder) -> Decimal:
    return Decimal(holder.session.call("GET", "/api/balance").body["balance"])


# --- reading and replacing ---------------------------------------------------------------------------


def test_an_unknown_allowed_model_or_a_price_for_a_model_not_allowed_is_refused(key_holder: KeyHolder) -> None:
    path = prices_path(key_holder.app)
    unknown = key_holder.session.call("PUT", path, {"allowedModels": ["gpt-4o", "gpt-4oo"]})
    assert unknown.status == 422 and unknown.body["error"]["code"] == "unknown_model"
    assert unknown.body["error"]["details"]["field"] == "allowedModels"
    assert (
        unknown.body["error"]["details"]["model"] == "gpt-4oo"
        and "gpt-4o" in unknown.body["error"]["details"]["closeMatches"]
    )
    not_allowed = key_holder.session.call(
        "PUT", path, {"allowedModels": ["gpt-4o"], "overrides": [{**OVERRIDE, "model": "gpt-4o-mini"}]}
    )
    assert not_allowed.status == 422 and not_allowed.body["error"]["code"] == "price_not_allowed"
    assert not_allowed.body["error"]["details"] == {"field": "overrides", "model": "gpt-4o-mini"}
    assert key_holder.session.call("GET", path).body == {"allowedModels": None, "overrides": []}  # nothing changed
    # a fine-tune the price list does not know is allowed with a price of its own, named with its provider or not
    fine_tune = {**OVERRIDE, "model": "openai/ft:gpt-4o-mini:acme::abc"}
    body = {"allowedModels": ["FT:gpt-4o-mini:acme::abc", "openai/gpt-4o"], "overrides": [fine_tune]}
    assert put_prices(key_holder, body)["allowedModels"] == body["allowedModels"]


def test_a_new_app_allows_every_model_and_has_no_overrides(key_holder: KeyHolder) -> None:
    reply = key_holder.session.call("GET", prices_path(key_holder.app))
    assert reply.status == 200
    assert reply.body == {"allowedModels": None, "overrides": []}


def test_the_owner_replaces_the_prices_as_a_whole(key_holder: KeyHolder) -> None:
    stored = put_prices(
        key_holder,
        {
            "allowedModels": ["  gpt-4o  ", "anthropic/claude-sonnet-4-5", "ft:gpt-4o-mini:acme::abc123"],
            "overrides": [
                OVERRIDE,
                {
                    "model": "ft:gpt-4o-mini:acme::abc123",
                    "inputPerMillion": 0.3,  # a JSON number, read from the JSON text and kept to 6 places
                    "outputPerMillion": "1.2",
                    "cacheReadPerMillion": "0.15",
                    "cacheWritePerMillion": None,
                },
            ],
        },
    )
    expected = {
        "allowedModels": ["gpt-4o", "anthropic/claude-sonnet-4-5", "ft:gpt-4o-mini:acme::abc123"],  # trimmed, in order
        "overrides": [
            {
                "model": "ft:gpt-4o-mini:acme::abc123",
                "inputPerMillion": "0.300000",
                "outputPerMillion": "1.200000",
                "cacheReadPerMillion": "0.150000",
                "cacheWritePerMillion": None,
            },
            {
                "model": "gpt-4o",
                "inputPerMillion": "1.000000",
                "outputPerMillion": "2.000000",
                "cacheReadPerMillion": None,
                "cacheWritePerMillion": None,
            },
        ],
    }
    assert stored == expected
    assert key_holder.session.call("GET", prices_path(key_holder.app)).body == expected
    # a PUT replaces everything: what it leaves out is gone
    assert put_prices(key_holder, {"overrides": [OVERRIDE]})["allowedModels"] is None
    assert [o["model"] for o in key_holder.session.call("GET", prices_path(key_holder.app)).body["overrides"]] == [
        "gpt-4o"
    ]
    assert put_prices(key_holder, {}) == {"allowedModels": None, "overrides": []}


def test_another_users_app_is_404_and_unchanged(key_holder: KeyHolder, other_user: Session) -> None:
    put_prices(key_holder, {"overrides": [OVERRIDE]})
    for method, body in (("GET", None), ("PUT", {"allowedModels": []})):
        reply = other_user.call(method, prices_path(key_holder.app), body)
        assert reply.status == 404 and reply.error_code == "not_found", reply.body
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        assert key_holder.session.call("GET", f"/api/echo-apps/{missing}/prices").status == 404
        assert key_holder.session.call("PUT", f"/api/echo-apps/{missing}/prices", {}).status == 404
    assert key_holder.session.call("GET", prices_path(key_holder.app)).body["allowedModels"] is None


def test_an_api_key_reads_its_own_apps_prices_and_never_changes_them(api: Api, key_holder: KeyHolder) -> None:
    put_prices(key_holder, {"allowedModels": ["gpt-4o"]})
    own = key_holder.call("GET", prices_path(key_holder.app))
    assert own.status == 200 and own.body["allowedModels"] == ["gpt-4o"]
    other_app = key_holder.session.create_app("Another app of the same owner")
    assert key_holder.call("GET", prices_path(other_app)).status == 404
    refused = key_holder.call("PUT", prices_path(key_holder.app), {"allowedModels": None})
    assert refused.status == 403 and refused.error_code == "user_session_required"
    assert api.call("GET", prices_path(key_holder.app)).status == 401
    assert key_holder.session.call("GET", prices_path(key_holder.app)).body["allowedModels"] == ["gpt-4o"]


BAD_BODIES = {
    "a negative price": {"overrides": [{**OVERRIDE, "inputPerMillion": "-1"}]},
    "a price over 10,000": {"overrides": [{**OVERRIDE, "outputPerMillion": "10000.01"}]},
    "seven decimal places": {"overrides": [{**OVERRIDE, "inputPerMillion": "0.0000001"}]},
    "a price as text": {"overrides": [{**OVERRIDE, "inputPerMillion": "cheap"}]},
    "a negative JSON number": {"overrides": [{**OVERRIDE, "cacheReadPerMillion": -0.5}]},
    "an override without an output price": {"overrides": [{"model": "gpt-4o", "inputPerMillion": "1"}]},
    "an unknown field": {"overrides": [{**OVERRIDE, "currency": "eur"}]},
    "a name of 201 characters": {"allowedModels": ["m" * 201]},
    "a blank name": {"allowedModels": ["   "]},
    "a name with a space inside": {"allowedModels": ["gpt 4o"]},
    "a name with NUL": {"allowedModels": ["gpt-4o\u0000"]},
    "501 allowed models": {"allowedModels": [f"model-{i}" for i in range(501)]},
    "501 overrides": {"overrides": [{**OVERRIDE, "model": f"m{i}"} for i in range(501)]},
    "the same model twice": {"allowedModels": ["gpt-4o", "gpt-4o"]},
    "the same model in another case": {"allowedModels": ["gpt-4o", "GPT-4o"]},
    "the same model with its provider prefix": {"overrides": [OVERRIDE, {**OVERRIDE, "model": "openai/gpt-4o"}]},
    "allowedModels as text": {"allowedModels": "gpt-4o"},
    "overrides null": {"overrides": None},
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_prices_are_refused_and_change_nothing(key_holder: KeyHolder, body: dict[str, Any]) -> None:
    before = put_prices(key_holder, {"allowedModels": ["gpt-4o-mini", "gpt-4o"], "overrides": [OVERRIDE]})
    reply = key_holder.session.call("PUT", prices_path(key_holder.app), body)
    assert 400 <= reply.status < 500, reply.body
    assert reply.error_code in ("validation_error", "invalid_characters"), reply.body
    assert key_holder.session.call("GET", prices_path(key_holder.app)).body == before


def test_the_bounds_themselves_are_accepted(key_holder: KeyHolder) -> None:
    body = {
        "allowedModels": ["m" * 200, *(f"model-{i}" for i in range(499))],
        "overrides": [  # models the price list does not know are allowed with a price of the app's own
            {
                "model": "m" * 200 if i == 0 else f"model-{i - 1}",
                "inputPerMillion": "10000",
                "outputPerMillion": "0",
                "cacheWritePerMillion": "0.000001",
            }
            for i in range(500)
        ],
    }
    stored = put_prices(key_holder, body)
    assert len(stored["allowedModels"]) == 500 and len(stored["overrides"]) == 500
    assert stored["overrides"][0]["inputPerMillion"] == "10000.000000"


def test_concurrent_replacements_leave_one_of_them_whole(api: Api, key_holder: KeyHolder) -> None:
    """Each PUT takes the app's lock before deleting and inserting: the result is one body, never a mix, and two
    PUTs naming the same models never collide."""
    bodies = [
        {
            "allowedModels": [f"a{n}", "gpt-4o"],
            "overrides": [{**OVERRIDE, "inputPerMillion": f"{n}"}, {**OVERRIDE, "model": f"a{n}"}],
        }
        for n in range(1, 9)
    ]
    barrier = threading.Barrier(8)

    def replace(body: dict[str, Any]) -> int:
        barrier.wait(timeout=10)
        return (
            Api(api.client.application).call("PUT", prices_path(key_holder.app), key_holder.session.token, body).status
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(replace, bodies)) == [200] * 8
    final = key_holder.session.call("GET", prices_path(key_holder.app)).body
    n = int(final["allowedModels"][0][1:])
    gpt_4o = next(o for o in final["overrides"] if o["model"] == "gpt-4o")
    assert gpt_4o["inputPerMillion"] == f"{n}.000000"


# --- what a call pays ----------------------------------------------------------------------------------


def test_a_model_the_app_does_not_allow_is_refused_and_nothing_is_written(funded: KeyHolder) -> None:
    put_prices(
        funded, {"allowedModels": ["gpt-4o-mini", "my-fine-tune"], "overrides": [{**OVERRIDE, "model": "my-fine-tune"}]}
    )
    for call in (
        {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 10},
        {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 10, "cost": "0.01"},  # a sent cost changes nothing
        {"model": "some-model-nobody-prices", "inputTokens": 1, "outputTokens": 1},  # refused before pricing
    ):
        for headers in ({}, {"Idempotency-Key": f"k-{uuid.uuid4()}"}):
            reply = funded.call("POST", "/api/transactions", call, headers=headers)
            assert reply.status == 403 and reply.error_code == "model_not_allowed", reply.body
            assert reply.body["error"]["details"]["model"] == call["model"]
    assert transactions_of(funded) == [] and balance_of(funded) == Decimal("10")
    # names match without case and without a provider prefix, as pricing matches them
    for model in ("gpt-4o-mini", "GPT-4o-mini", "openai/gpt-4o-mini"):
        reply = funded.call("POST", "/api/transactions", {"model": model, "inputTokens": 1000, "outputTokens": 0})
        assert reply.status == 201 and reply.body["cost"] == "0.000150", reply.body
    assert (
        funded.call(
            "POST", "/api/transactions", {"model": "my-fine-tune", "inputTokens": 1, "outputTokens": 1, "cost": "0.001"}
        ).status
        == 201
    )


def test_an_empty_list_allows_no_model_and_null_allows_every_model(funded: KeyHolder) -> None:
    call = {"model": "gpt-4o-mini", "inputTokens": 1, "outputTokens": 1}
    put_prices(funded, {"allowedModels": []})
    assert funded.call("POST", "/api/transactions", call).error_code == "model_not_allowed"
    put_prices(funded, {"allowedModels": None})
    assert funded.call("POST", "/api/transactions", call).status == 201


def test_a_refused_call_with_an_idempotency_key_can_succeed_once_allowed(funded: KeyHolder) -> None:
    call = {"model": "gpt-4o", "inputTokens": 1000, "outputTokens": 0}
    headers = {"Idempotency-Key": "allow-then-retry"}
    put_prices(funded, {"allowedModels": ["gpt-4o-mini"]})
    assert funded.call("POST", "/api/transactions", call, headers=headers).status == 403
    put_prices(funded, {"allowedModels": ["gpt-4o-mini", "gpt-4o"]})
    first = funded.call("POST", "/api/transactions", call, headers=headers)
    assert first.status == 201 and first.body["cost"] == "0.002500"
    # a retry replays what was recorded, even after the app stops allowing the model
    put_prices(funded, {"allowedModels": ["gpt-4o-mini"]})
    again = funded.call("POST", "/api/transactions", call, headers=headers)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true" and again.body == first.body
    assert len(transactions_of(funded)) == 1


def test_an_override_wins_over_the_price_data_and_a_sent_cost(api: Api, user: Session) -> None:
    app = user.create_app("Marked up", markup="1.25", acceptsCustomers=True)
    put_prices(
        KeyHolder(user, app, ""), {"overrides": [{**OVERRIDE, "model": "openai/GPT-4o", "cacheReadPerMillion": "0.5"}]}
    )
    customer, key = user.customer_of(app)  # a customer: the app's markup applies
    holder = KeyHolder(customer, app, key)
    call = {"model": "gpt-4o", "inputTokens": 1000, "outputTokens": 500, "cacheReadTokens": 200}
    # 800 × $1 + 200 × $0.50 + 500 × $2, per million (genai-prices would say 0.007250)
    priced = holder.call("POST", "/api/transactions", call)
    assert (priced.body["providerCost"], priced.body["markupAmount"], priced.body["cost"]) == (
        "0.001900",
        "0.000475",
        "0.002375",
    )
    sent = holder.call("POST", "/api/transactions", {**call, "cost": "5.00"})
    assert sent.status == 201 and sent.body["providerCost"] == "0.001900"
    # a cache write without its own price is charged at the input price, as genai-prices does
    written = holder.call("POST", "/api/transactions", {**call, "cacheReadTokens": 0, "cacheWriteTokens": 400})
    assert written.body["providerCost"] == "0.002000"  # 1000 × $1 + 500 × $2, per million
    # other models keep genai-prices' price
    other = holder.call("POST", "/api/transactions", {"model": "gpt-4o-mini", "inputTokens": 1000, "outputTokens": 0})
    assert other.body["providerCost"] == "0.000150"
    assert Decimal(holder.session.call("GET", "/api/balance").body["balance"]) == Decimal(10) - sum(
        Decimal(r.body["cost"]) for r in (priced, sent, written, other)
    )


def test_an_override_prices_a_model_nobody_else_knows(funded: KeyHolder) -> None:
    call = {"model": "ft:gpt-4o-mini:acme::abc123", "inputTokens": 2_000_000, "outputTokens": 1_000_000}
    assert funded.call("POST", "/api/transactions", call).error_code == "unknown_model"
    put_prices(funded, {"overrides": [{"model": call["model"], "inputPerMillion": "0.3", "outputPerMillion": "1.2"}]})
    reply = funded.call("POST", "/api/transactions", call)
    assert reply.status == 201 and reply.body["cost"] == "1.800000"  # 2 × $0.30 + 1 × $1.20


def test_a_call_priced_past_the_largest_cost_is_422_and_writes_nothing(funded: KeyHolder) -> None:
    put_prices(funded, {"overrides": [{**OVERRIDE, "inputPerMillion": "10000", "outputPerMillion": "10000"}]})
    credit(funded.session.user["id"], "100000")
    reply = funded.call("POST", "/api/transactions", {"model": "gpt-4o", "inputTokens": 1_000_000, "outputTokens": 0})
    assert reply.status == 422 and reply.error_code == "cost_too_large", reply.body
    assert transactions_of(funded) == []


def test_the_key_lookup_reads_the_version_of_the_apps_prices(key_holder: KeyHolder) -> None:
    """A debit for an app that never had prices of its own sends no query for them (version 0); one whose prices
    changed since its function last loaded them loads them again: each change applies from the next call on."""

    def version() -> str:
        return auth.authenticate(f"Bearer {key_holder.key}")["appPricesVersion"]

    assert version() == "0"
    put_prices(key_holder, {"allowedModels": ["gpt-4o"]})
    assert version() == "1"
    put_prices(key_holder, {"overrides": [OVERRIDE]})
    put_prices(key_holder, {})
    assert version() == "3"
    refused = key_holder.session.call("PUT", prices_path(key_holder.app), {"allowedModels": ["a", "A"]})
    assert refused.status == 422 and version() == "3"  # a refused change is no change


def test_every_change_applies_from_the_next_call_in_every_function(funded: KeyHolder) -> None:
    """Calls alternate with changes; each call sees the change just before it, though the function keeps what it
    loaded (a stale copy would price or refuse by the previous version)."""
    call = {"model": "gpt-4o", "inputTokens": 100_000, "outputTokens": 0}
    for price in ("1", "2", "3"):
        put_prices(funded, {"overrides": [{**OVERRIDE, "inputPerMillion": price}]})
        for _ in range(2):  # the second call is priced from what the function kept
            assert funded.call("POST", "/api/transactions", call).body["cost"] == f"0.{price}00000"
    put_prices(funded, {"allowedModels": ["gpt-4o-mini"]})
    assert funded.call("POST", "/api/transactions", call).error_code == "model_not_allowed"
    put_prices(funded, {})
    assert funded.call("POST", "/api/transactions", call).body["cost"] == "0.250000"  # the price list's again


def test_rules_of_one_app_do_not_touch_another(funded: KeyHolder) -> None:
    other = funded.session.create_app("Unrestricted")
    other_key = funded.session.create_key(other["id"])["key"]
    put_prices(funded, {"allowedModels": ["gpt-4o-mini", "gpt-4o"], "overrides": [OVERRIDE]})
    reply = funded.session.api.call(
        "POST", "/api/transactions", other_key, {"model": "gpt-4o", "inputTokens": 1000, "outputTokens": 0}
    )
    assert reply.status == 201 and reply.body["cost"] == "0.002500"
    assert db.price_rules(uuid.UUID(other["id"]))["version"] == 0


# --- the arithmetic ------------------------------------------------------------------------------------

PER_MILLION = st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    input_price=PER_MILLION,
    output_price=PER_MILLION,
    cache_read_price=st.none() | PER_MILLION,
    cache_write_price=st.none() | PER_MILLION,
)
def test_an_override_charges_what_genai_prices_would_for_the_same_prices(
    data: st.DataObject,
    input_price: Decimal,
    output_price: Decimal,
    cache_read_price: Decimal | None,
    cache_write_price: Decimal | None,
) -> None:
    from genai_prices import Usage
    from genai_prices.types import ModelPrice

    input_tokens = data.draw(st.integers(0, 10_000_000))
    cache_read = data.draw(st.integers(0, input_tokens))
    cache_write = data.draw(st.integers(0, input_tokens - cache_read))
    output_tokens = data.draw(st.integers(0, 10_000_000))
    tokens = pricing.TokenCounts(input_tokens, output_tokens, cache_read, cache_write)
    ours = pricing.TokenPrices(input_price, output_price, cache_read_price, cache_write_price).cost(tokens)
    theirs = ModelPrice(
        input_mtok=input_price,
        output_mtok=output_price,
        cache_read_mtok=cache_read_price,
        cache_write_mtok=cache_write_price,
    ).calc_price(
        Usage(
            input_tokens=input_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            output_tokens=output_tokens,
        )
    )
    assert ours == theirs["total_price"]


def test_model_keys_drop_case_and_a_known_provider_prefix_only() -> None:
    assert pricing.model_key(" OpenAI/GPT-4o ") == "gpt-4o"
    assert pricing.model_key("anthropic/claude-sonnet-4-5") == "claude-sonnet-4-5"
    assert pricing.model_key("meta-llama/Llama-3-70b") == "meta-llama/llama-3-70b"  # not a provider: kept
    assert pricing.model_key("ft:gpt-4o-mini:acme::abc") == "ft:gpt-4o-mini:acme::abc"
