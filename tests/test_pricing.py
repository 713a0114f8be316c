"""Prices as data: genai-prices' prices at the call's time, cache tokens, the cost split, and the price list."""

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from conftest import Api, Session, credit
from hypothesis import given
from hypothesis import strategies as st

from echo_control import pricing
from tests.invariants import unreconciled_balances

# Real usage objects as each provider's API returns them, mapped to our fields as a proxy would, and the price
# worked out by hand from the per-million prices in genai-prices' data (markup 1, so cost = provider cost).
USAGE_SHAPES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    (
        "OpenAI chat completion, cached prompt",
        {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 200}},
        # prompt_tokens already includes the cached ones
        {"model": "gpt-4o-2024-08-06", "inputTokens": 1000, "outputTokens": 500, "cacheReadTokens": 200},
        # 800 × $2.50 + 200 × $1.25 + 500 × $10.00, per million
        "0.007250",
    ),
    (
        "Anthropic messages, cache read and cache write",
        {
            "input_tokens": 1500,
            "output_tokens": 800,
            "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 500,
        },
        # Anthropic's input_tokens excludes cached ones: every input token is 1500 + 2000 + 500
        {
            "model": "claude-sonnet-4-5-20250929",
            "inputTokens": 4000,
            "outputTokens": 800,
            "cacheReadTokens": 2000,
            "cacheWriteTokens": 500,
        },
        # 1500 × $3 + 2000 × $0.30 + 500 × $3.75 + 800 × $15, per million
        "0.018975",
    ),
    (
        "Gemini generateContent, cached content",
        {"promptTokenCount": 4000, "candidatesTokenCount": 600, "cachedContentTokenCount": 1000},
        {
            "model": "gemini-2.0-flash",
            "provider": "google",
            "inputTokens": 4000,
            "outputTokens": 600,
            "cacheReadTokens": 1000,
        },
        # 3000 × $0.10 + 1000 × $0.025 + 600 × $0.40, per million
        "0.000565",
    ),
    (
        "OpenAI through a router that prefixes the provider",
        {"prompt_tokens": 1000, "completion_tokens": 500},
        {"model": "openai/gpt-4o", "inputTokens": 1000, "outputTokens": 500},
        # 1000 × $2.50 + 500 × $10.00, per million
        "0.007500",
    ),
]


@pytest.fixture
def metered(user: Session, api: Api) -> tuple[Session, dict[str, Any], str]:
    app = user.create_app("Priced app")  # markup 1
    key = user.create_key(app["id"])["key"]
    credit(user.user["id"], "10")
    return user, app, key


@pytest.mark.parametrize(
    ("shape", "provider_usage", "call", "expected"), USAGE_SHAPES, ids=[s[0] for s in USAGE_SHAPES]
)
def test_real_usage_shapes_are_priced_to_the_micro_dollar(
    api: Api, metered, shape: str, provider_usage: dict[str, Any], call: dict[str, Any], expected: str
) -> None:
    _, _, key = metered
    reply = api.call("POST", "/api/transactions", key, call)
    assert reply.status == 201, reply.body
    assert reply.body["providerCost"] == expected and reply.body["cost"] == expected
    assert reply.body["markupAmount"] == "0.000000"
    assert reply.body["cacheReadTokens"] == call.get("cacheReadTokens", 0)


def test_the_markup_is_split_from_the_provider_cost(api: Api, user: Session) -> None:
    app = user.create_app("Marked up", markup="1.25", acceptsCustomers=True)
    customer, key = user.customer_of(app)  # a customer: the app's markup applies (an owner's own calls carry none)
    # a client-sent cost is the provider cost: the app's markup comes on top
    sent = api.call(
        "POST",
        "/api/transactions",
        key,
        {"model": "my-fine-tune", "inputTokens": 1, "outputTokens": 1, "cost": "0.010000"},
    )
    assert sent.status == 201, sent.body
    assert (sent.body["providerCost"], sent.body["markupAmount"], sent.body["cost"]) == (
        "0.010000",
        "0.002500",
        "0.012500",
    )
    priced = api.call("POST", "/api/transactions", key, {"model": "gpt-4o", "inputTokens": 1000, "outputTokens": 500})
    assert (priced.body["providerCost"], priced.body["markupAmount"], priced.body["cost"]) == (
        "0.007500",
        "0.001875",
        "0.009375",
    )
    history = user.call("GET", "/api/transactions", query={"echoAppId": app["id"]}).body["transactions"]
    assert {(t["providerCost"], t["markupAmount"], t["cost"]) for t in history} == {
        ("0.010000", "0.002500", "0.012500"),
        ("0.007500", "0.001875", "0.009375"),
    }
    assert Decimal(customer.call("GET", "/api/balance").body["balance"]) == Decimal("10") - Decimal("0.021875")
    assert unreconciled_balances() == []


def test_a_call_is_priced_at_its_own_time() -> None:
    # claude-sonnet-4-6: prompts over 200k tokens cost $6/$22.50 per million until 2026-03-13, then $3/$15 flat
    tokens = pricing.TokenCounts(input=300_000, output=1000)
    before = pricing.provider_cost("claude-sonnet-4-6", tokens, at=datetime(2026, 2, 1, tzinfo=UTC))
    after = pricing.provider_cost("claude-sonnet-4-6", tokens, at=datetime(2026, 4, 1, tzinfo=UTC))
    assert before == Decimal("1.8225")  # 300,000 × $6 + 1,000 × $22.50, per million
    assert after == Decimal("0.915")  # 300,000 × $3 + 1,000 × $15, per million


def test_an_unknown_model_without_a_cost_is_422_with_close_matches(api: Api, metered) -> None:
    _, _, key = metered
    reply = api.call("POST", "/api/transactions", key, {"model": "gpt-4o-minni", "inputTokens": 1, "outputTokens": 1})
    assert reply.status == 422 and reply.error_code == "unknown_model"
    assert "gpt-4o-mini" in reply.body["error"]["details"]["closeMatches"]


def test_cached_tokens_cannot_exceed_the_input(api: Api, metered) -> None:
    _, _, key = metered
    for call in (
        {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 1, "cacheReadTokens": 8, "cacheWriteTokens": 3},
        {"model": "gpt-4o", "inputTokens": 10, "outputTokens": 1, "reasoningTokens": 2},
    ):
        reply = api.call("POST", "/api/transactions", key, call)
        assert reply.status == 422 and reply.error_code == "validation_error", reply.body


def test_the_price_list_is_public_filtered_and_names_its_source(api: Api) -> None:
    reply = api.call("GET", "/api/models", query={"q": "GPT-4O-MINI"})
    assert reply.status == 200
    assert reply.body["source"] == {"package": "genai-prices", "version": pricing.source()["version"]}
    rows = {(m["provider"], m["model"]): m for m in reply.body["models"]}
    assert rows[("openai", "gpt-4o-mini")]["inputPerMillion"] == "0.15"
    assert rows[("openai", "gpt-4o-mini")]["cacheWritePerMillion"] is None  # OpenAI has no cache write price
    assert all("gpt-4o-mini" in m["model"].lower() or "gpt-4o-mini" in m["name"].lower() for m in reply.body["models"])
    everything = api.call("GET", "/api/models", query={"limit": 500})
    assert everything.body["total"] > 1000 and everything.body["total"] > len(reply.body["models"])


MICRO = Decimal("0.000001")


@given(
    provider_cost=st.decimals(min_value=0, max_value=1000, places=9, allow_nan=False),
    markup=st.decimals(min_value=1, max_value=100, places=4, allow_nan=False),
)
def test_the_split_adds_up_to_the_micro_dollar(provider_cost: Decimal, markup: Decimal) -> None:
    split = pricing.CostSplit.of(provider_cost, markup)
    assert split.cost == split.provider_cost + split.markup_amount
    assert split.provider_cost == provider_cost.quantize(MICRO, rounding=ROUND_HALF_UP)
    assert split.markup_amount == (split.provider_cost * (markup - 1)).quantize(MICRO, rounding=ROUND_HALF_UP)
    assert split.markup_amount >= 0 and split.cost.as_tuple().exponent >= -6
    if markup == 1:
        assert split.markup_amount == 0


# --- the snapshot: genai-prices' data, read in milliseconds ---------------------------------------------------


def test_the_snapshot_is_the_locked_genai_prices_data() -> None:
    """echo_control/prices/ is what `make prices` writes from the installed (locked) genai-prices: after an upgrade,
    a stale snapshot fails here."""
    from echo_control import price_snapshot
    from local_runner import prices

    stored = {path.name: path.read_text(encoding="utf-8") for path in price_snapshot.SNAPSHOT.glob("*.json")}
    assert stored == prices.render(), "run `make prices`"


def _moments(model: Any) -> list[datetime]:
    """Now, and either side of every date and time of day from which one of the model's prices applies."""
    from datetime import time, timedelta

    from genai_prices import types

    moments = [datetime.now(UTC)]
    for conditional in model.prices if isinstance(model.prices, list) else []:
        constraint = conditional.constraint
        if isinstance(constraint, types.StartDateConstraint):
            start = datetime.combine(constraint.start_date, time(0), tzinfo=UTC)
            moments += [start, start - timedelta(seconds=1)]
        elif isinstance(constraint, types.TimeOfDateConstraint):
            for edge in (constraint.start_time, constraint.end_time):
                at = datetime.combine(datetime(2026, 6, 1), edge)
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
                moments += [at, at - timedelta(seconds=1)]
    return moments


def _usages(model: Any) -> list[pricing.TokenCounts]:
    """Plain, cached and large calls, and either side of every tier's threshold."""
    from genai_prices import types

    starts = {
        tier.start
        for conditional in (
            model.prices if isinstance(model.prices, list) else [types.ConditionalPrice(prices=model.prices)]
        )
        for price in conditional.prices.__dict__.values()
        if isinstance(price, types.TieredPrices)
        for tier in price.tiers
    }
    usages = [pricing.TokenCounts(1234, 567), pricing.TokenCounts(9000, 300, cache_read=5000, cache_write=1000)]
    usages += [pricing.TokenCounts(n, 1000, cache_read=n // 2) for s in starts for n in (s, s + 1)]
    return usages


def test_the_snapshot_finds_and_prices_every_model_as_genai_prices_does() -> None:
    """Every model of every provider, referred to by its id alone and with its provider, at every moment one of its
    prices starts (and just before), for plain, cached and tier-crossing calls: the same model, and the same price
    to the last digit, as genai-prices' own calc_price."""
    from genai_prices import Usage, calc_price
    from genai_prices.data import providers
    from genai_prices.data_snapshot import get_snapshot

    from echo_control import price_snapshot

    mismatches, priced = [], 0
    for provider in providers:
        for model in provider.models:
            for provider_id in (None, provider.id):
                try:
                    expected = get_snapshot().find_provider_model(model.id, None, provider_id, None)
                except LookupError:
                    expected = None
                found = price_snapshot.find(model.id, provider_id)
                if (found and (found.provider, found.id)) != (expected and (expected[0].id, expected[1].id)):
                    mismatches.append(("find", provider_id, model.id, found, expected))
                    continue
                if found is None or provider_id is None:
                    continue
                for at in _moments(model):
                    for tokens in _usages(model):
                        counts = {
                            "input_tokens": tokens.input,
                            "output_tokens": tokens.output,
                            "cache_read_tokens": tokens.cache_read,
                            "cache_write_tokens": tokens.cache_write,
                        }
                        ours = price_snapshot.cost(found, counts, at)
                        priced += 1
                        usage = Usage(**counts)
                        theirs = calc_price(usage, model.id, provider_id=provider_id, genai_request_timestamp=at)
                        if ours != theirs.total_price:
                            mismatches.append((provider_id, model.id, at, tokens, ours, theirs.total_price))
    assert mismatches == []
    assert priced > 5000
