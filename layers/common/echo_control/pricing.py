"""What a call costs: the provider's price from the `genai-prices` package's data at the call's own time, and the
split of what the user pays into that provider cost and the app owner's markup.

Prices come from the package's data through its snapshot (`price_snapshot`, read on the first priced call in
milliseconds, where importing genai-prices and its data took ~0.5 s)."""

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from echo_control import price_snapshot
from echo_control.errors import Unprocessable

if TYPE_CHECKING:
    from echo_control.models import ModelPriceList

MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.000001")  # NUMERIC(10, 6)
MAX_CLOSE_MATCHES = 5


@dataclass(frozen=True)
class TokenCounts:
    """A call's tokens as the API takes them: input counts every input token, cached ones included."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0


@dataclass(frozen=True)
class CostSplit:
    provider_cost: Decimal  # the price of the tokens
    markup_amount: Decimal  # the app owner's: provider_cost × (markup − 1)
    cost: Decimal  # what the user pays: their sum

    @classmethod
    def of(cls, provider_cost: Decimal, markup: Decimal) -> "CostSplit":
        """Both parts rounded half-up to the micro-dollar, so that cost = providerCost + markupAmount exactly."""
        provider_cost = provider_cost.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)
        markup_amount = (provider_cost * (markup - 1)).quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)
        return cls(provider_cost, markup_amount, provider_cost + markup_amount)


def provider_cost(model: str, tokens: TokenCounts, provider: str | None = None, at: datetime | None = None) -> Decimal:
    """The provider's price of these tokens at `at` (now by default); an unknown model is 422 with close matches."""
    reference, provider_id = _reference(model, provider)
    at = at or datetime.now(UTC)
    found = price_snapshot.find(reference, provider_id)
    if found is None:
        raise Unprocessable(
            f"Unknown model '{model}': send its cost, or one of the priced models (GET /api/models)",
            details={"field": "model", "closeMatches": close_matches(reference)},
            code="unknown_model",
        )
    counts = {
        "input_tokens": tokens.input,
        "output_tokens": tokens.output,
        "cache_read_tokens": tokens.cache_read,
        "cache_write_tokens": tokens.cache_write,
    }
    return price_snapshot.cost(found, counts, at)


@dataclass(frozen=True)
class TokenPrices:
    """An app owner's prices for one model, USD per million tokens. A cache price left out charges those tokens at
    the input price, as genai-prices does for a model without one."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    def cost(self, tokens: TokenCounts) -> Decimal:
        uncached = tokens.input - tokens.cache_read - tokens.cache_write
        cache_read = self.input if self.cache_read is None else self.cache_read
        cache_write = self.input if self.cache_write is None else self.cache_write
        total = uncached * self.input + tokens.cache_read * cache_read + tokens.cache_write * cache_write
        return (total + tokens.output * self.output) / MILLION


@dataclass(frozen=True)
class AppRules:
    """An app's own prices at one version: the model keys it allows (None: every model), and its overrides."""

    version: int
    allowed: frozenset[str] | None
    overrides: dict[str, TokenPrices]

    def allows(self, key: str) -> bool:
        return self.allowed is None or key in self.allowed


def is_priced(model: str) -> bool:
    """Whether the price list knows this model (with or without a provider prefix)."""
    return price_snapshot.find(*_reference(model, None)) is not None


def model_key(model: str) -> str:
    """How an app's allowed models and overrides match a call's model: without case and without a provider
    prefix ("OpenAI/GPT-4o" is "gpt-4o"), the prefixes pricing strips before looking a model up."""
    name = model.strip()
    prefix, _, rest = name.partition("/")
    if rest and prefix.lower() in _provider_ids():
        name = rest
    return name.lower()


def _reference(model: str, provider: str | None) -> tuple[str, str | None]:
    """("openai/gpt-4o", None) → ("gpt-4o", "openai"): SDKs and routers prefix the provider."""
    prefix, _, rest = model.partition("/")
    if provider is None and rest and prefix.lower() in _provider_ids():
        return rest, prefix.lower()
    return model, provider


@functools.cache
def _provider_ids() -> frozenset[str]:
    return frozenset(p["id"] for p in price_snapshot.snapshot()["providers"])


@functools.cache
def _model_ids() -> tuple[str, ...]:
    return tuple(sorted({m.id for m in price_snapshot.models()}))


def close_matches(reference: str) -> list[str]:
    import difflib  # only an unknown model needs it: kept out of every function's start

    return difflib.get_close_matches(reference.lower(), _model_ids(), n=MAX_CLOSE_MATCHES, cutoff=0.6)


# --- the price list ----------------------------------------------------------------------------------


def source() -> dict[str, str]:
    snapshot = price_snapshot.snapshot()
    return {"package": snapshot["package"], "version": snapshot["version"]}


def _current(prices: tuple[price_snapshot.Conditional, ...], today: datetime) -> price_snapshot.Conditional | None:
    """The model's prices in force now: the last conditional price that always applies or whose start date has
    come (a time-of-day price is not listed)."""
    current = None
    for conditional in prices:
        if conditional.times is None and (conditional.start_date is None or conditional.start_date <= today.date()):
            current = conditional
    return current


@functools.cache
def price_list() -> tuple[dict[str, Any], ...]:
    """Every priced model with its current per-million prices (absent prices are None), by provider and model."""
    now = datetime.now(UTC)
    rows = []
    for model in price_snapshot.models():
        prices = _current(model.prices, now)
        if prices is None:
            continue
        rows.append(
            {
                "provider": model.provider,
                "model": model.id,
                "name": model.name,
                "input_per_million": prices.per_million("input_mtok"),
                "output_per_million": prices.per_million("output_mtok"),
                "cache_read_per_million": prices.per_million("cache_read_mtok"),
                "cache_write_per_million": prices.per_million("cache_write_mtok"),
            }
        )
    return tuple(sorted(rows, key=lambda r: (r["provider"], r["model"])))


def models(query: str | None = None, page: int = 1, limit: int | None = None) -> "ModelPriceList":
    """One page of the price list, filtered by a case-insensitive substring of provider, model id or name (`?q=`).

    Pages are numbered (the list changes only with the genai-prices package), so a page can link to any other."""
    from echo_control.models import MODELS_PAGE_SIZE, ModelPrice, ModelPriceList, PriceSource

    limit = limit or MODELS_PAGE_SIZE
    needle = (query or "").strip().lower()
    rows = [r for r in price_list() if not needle or any(needle in r[k].lower() for k in ("provider", "model", "name"))]
    start = (page - 1) * limit
    return ModelPriceList(
        models=[ModelPrice(**r) for r in rows[start : start + limit]],
        source=PriceSource(**source()),
        page=page,
        limit=limit,
        total=len(rows),
        next_page=page + 1 if start + limit < len(rows) else None,
    )
