"""Provider prices in USD per million tokens, and the cost of one call with an app's markup."""

import re
from decimal import ROUND_HALF_UP, Decimal

from echo_control.errors import Unprocessable

MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.000001")  # NUMERIC(10, 6)

# (input, output) USD per 1M tokens, list prices of the providers.
PRICES: dict[str, tuple[Decimal, Decimal]] = {
    name: (Decimal(i), Decimal(o))
    for name, i, o in [
        # OpenAI
        ("gpt-5", "1.25", "10.00"),
        ("gpt-5-mini", "0.25", "2.00"),
        ("gpt-5-nano", "0.05", "0.40"),
        ("gpt-4.1", "2.00", "8.00"),
        ("gpt-4.1-mini", "0.40", "1.60"),
        ("gpt-4.1-nano", "0.10", "0.40"),
        ("gpt-4o", "2.50", "10.00"),
        ("gpt-4o-mini", "0.15", "0.60"),
        ("gpt-4-turbo", "10.00", "30.00"),
        ("gpt-4", "30.00", "60.00"),
        ("gpt-3.5-turbo", "0.50", "1.50"),
        ("o1", "15.00", "60.00"),
        ("o1-mini", "1.10", "4.40"),
        ("o3", "2.00", "8.00"),
        ("o3-mini", "1.10", "4.40"),
        ("o4-mini", "1.10", "4.40"),
        # Anthropic
        ("claude-opus-4", "15.00", "75.00"),
        ("claude-sonnet-4", "3.00", "15.00"),
        ("claude-3-7-sonnet", "3.00", "15.00"),
        ("claude-3-5-sonnet", "3.00", "15.00"),
        ("claude-3-5-haiku", "0.80", "4.00"),
        ("claude-3-opus", "15.00", "75.00"),
        ("claude-3-sonnet", "3.00", "15.00"),
        ("claude-3-haiku", "0.25", "1.25"),
        # Google
        ("gemini-2.5-pro", "1.25", "10.00"),
        ("gemini-2.5-flash", "0.30", "2.50"),
        ("gemini-2.0-flash", "0.10", "0.40"),
        ("gemini-1.5-pro", "1.25", "5.00"),
        ("gemini-1.5-flash", "0.075", "0.30"),
    ]
}

# Dated snapshots ("gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022") and "-latest" share the family price.
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


def price_of(model: str) -> tuple[Decimal, Decimal] | None:
    name = model.rsplit("/", 1)[-1].lower()  # "openai/gpt-4o" → "gpt-4o"
    return PRICES.get(name) or PRICES.get(_SNAPSHOT_SUFFIX.sub("", name))


def cost_of(model: str, input_tokens: int, output_tokens: int, markup: Decimal) -> Decimal:
    price = price_of(model)
    if price is None:
        raise Unprocessable(
            f"Unknown model '{model}': send its cost",
            details={"field": "cost", "knownModels": sorted(PRICES)},
        )
    raw = (input_tokens * price[0] + output_tokens * price[1]) / MILLION * markup
    return raw.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)
