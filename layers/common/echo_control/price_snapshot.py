"""genai-prices' data as a compact snapshot (prices/*.json, written by `make prices` from the locked package): its
providers, models, match rules and every price with the date or time of day it applies from, read on the first
priced call in ~10 ms where importing genai-prices and its data takes ~0.5 s.

Lookups follow genai-prices' own rules (provider by id or by the model's name, a provider's fallbacks, compact dated
names); prices are computed as genai-prices computes them for the token counts a call reports (input, output, cache
reads and writes): tiers, per-request fees, and nothing for units a call does not report (audio, images, searches).
tests/test_pricing.py checks, model by model and price by price, that the answers are genai-prices' own, so the
package itself is needed only to write the snapshot and to test it (not in the layer)."""

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("prices")  # index.json, and <provider id>.json with each provider's models


def matches(rule: dict[str, Any], text: str) -> bool:
    """genai-prices' match clauses, read as they are stored (compiling every model's would cost more than the
    lookups it saves); all but a regex ignore case, and `text` is already lower case."""
    ((kind, value),) = rule.items()
    if kind == "equals":
        return text == value.lower()
    if kind == "or":
        return any(matches(r, text) for r in value)
    if kind == "starts_with":
        return text.startswith(value.lower())
    if kind == "contains":
        return value.lower() in text
    if kind == "regex":
        return re.search(value, text) is not None
    if kind == "ends_with":
        return text.endswith(value.lower())
    if kind == "and":
        return all(matches(r, text) for r in value)
    raise ValueError(f"unknown match rule {kind}")


@dataclass(frozen=True)
class Unit:
    usage: str
    per: int
    dimensions: frozenset[tuple[str, str]]


Price = Decimal | tuple[Decimal, tuple[tuple[int, Decimal], ...]]  # a price, or (base, ((start, price), …))


@dataclass(frozen=True)
class Conditional:
    start_date: date | None
    times: tuple[time, time] | None  # a daily interval, UTC
    prices: tuple[tuple[str, Price], ...]  # in genai-prices' order (the sum is made in it)

    def active(self, at: datetime) -> bool:
        if self.start_date is not None:
            return at.astimezone(UTC).date() >= self.start_date
        if self.times is not None:
            now, (start, end) = at.astimezone(UTC).timetz(), self.times
            return (now >= start or now < end) if end < start else start <= now < end
        return True

    def per_million(self, key: str) -> Decimal | None:
        """The price of a key as the price list shows it: a tiered price by its base tier."""
        value = dict(self.prices).get(key)
        return value[0] if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    provider: str
    prices: tuple[Conditional, ...]

    @classmethod
    def of(cls, provider: dict[str, Any], raw: dict[str, Any]) -> "Model":
        return cls(raw["id"], raw["name"] or raw["id"], provider["id"], tuple(_conditional(c) for c in raw["prices"]))

    def prices_at(self, at: datetime) -> Conditional:
        """The last price whose constraint holds, else the first (genai-prices' rule)."""
        return next((c for c in reversed(self.prices) if c.active(at)), self.prices[0])


def _price(value: Any) -> Price:
    if isinstance(value, str):
        return Decimal(value)
    return Decimal(value["base"]), tuple(sorted((start, Decimal(p)) for start, p in value["tiers"]))


def _conditional(raw: dict[str, Any]) -> Conditional:
    when = raw["when"] or {}

    def utc(text: str) -> time:
        moment = time.fromisoformat(text)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return datetime.combine(date(1970, 1, 1), moment).astimezone(UTC).timetz()

    return Conditional(
        start_date=date.fromisoformat(when["startDate"]) if "startDate" in when else None,
        times=(utc(when["startTime"]), utc(when["endTime"])) if "startTime" in when else None,
        prices=tuple((k, _price(v)) for k, v in raw["prices"].items()),
    )


@functools.cache
def snapshot() -> dict[str, Any]:
    """The snapshot's index as stored: package, version, units, providers (without their models)."""
    data: dict[str, Any] = json.loads((SNAPSHOT / "index.json").read_text(encoding="utf-8"))
    return data


@functools.cache
def provider_models(provider_id: str) -> list[dict[str, Any]]:
    """A provider's models as stored, read when first needed (openrouter's alone is 40% of the snapshot)."""
    models: list[dict[str, Any]] = json.loads((SNAPSHOT / f"{provider_id}.json").read_text(encoding="utf-8"))
    return models


@functools.cache
def units() -> dict[str, Unit]:
    return {
        key: Unit(u["usage"], u["per"], frozenset(u["dimensions"].items())) for key, u in snapshot()["units"].items()
    }


def models() -> Iterator[Model]:
    """Every model of every provider, in the package's order."""
    for provider in snapshot()["providers"]:
        for raw in provider_models(provider["id"]):
            yield Model.of(provider, raw)


# --- finding a model: genai-prices' DataSnapshot.find_provider_model -------------------------------------------


def _provider_by_id(provider_id: str) -> dict[str, Any] | None:
    wanted = provider_id.lower().strip()
    providers = snapshot()["providers"]
    return next((p for p in providers if p["id"] == wanted), None) or next(
        (p for p in providers if p["providerMatch"] and matches(p["providerMatch"], wanted)), None
    )


def _match(provider: dict[str, Any], model_ref: str, fall_back: bool) -> Model | None:
    raw = next((m for m in provider_models(provider["id"]) if matches(m["match"], model_ref)), None)
    if raw is not None:
        return Model.of(provider, raw)
    if fall_back:  # one step only, as genai-prices
        for fallback_id in provider["fallbackProviders"]:
            fallback = next((p for p in snapshot()["providers"] if p["id"] == fallback_id), None)
            if fallback and (found := _match(fallback, model_ref, False)):
                return found
    return None


_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


def _dashed_date(match: re.Match[str]) -> str:
    year, month, day = (int(match.group(i)) for i in range(2, 5))
    try:
        date(year, month, day)
    except ValueError:
        return match.group(0)
    return f"{match.group(1)}{year:04d}-{month:02d}-{day:02d}"


@functools.lru_cache(maxsize=4096)
def find(model_ref: str, provider_id: str | None) -> Model | None:
    """The model genai-prices would price for this reference and provider, or None (unknown)."""
    model_ref = model_ref.lower()
    if provider_id and provider_id.lower() == "litellm" and "/" in model_ref:
        actual_provider, actual_ref = model_ref.split("/", 1)
        if actual_provider and _provider_by_id(actual_provider):
            provider_id, model_ref = actual_provider, actual_ref
    provider: dict[str, Any] | None = None
    if provider_id is not None:
        provider = _provider_by_id(provider_id)
        if provider is None and provider_id.lower() != "litellm":
            return None
    if provider is None and model_ref:
        provider = next(
            (p for p in snapshot()["providers"] if p["modelMatch"] and matches(p["modelMatch"], model_ref)), None
        )
    if provider is None:
        return None
    found = _match(provider, model_ref, True)
    if found is None and (dashed := _COMPACT_DATE.sub(_dashed_date, model_ref)) != model_ref:
        found = _match(provider, dashed, True)
    return found


# --- pricing: genai-prices' ModelPrice.calc_price for a call's reported tokens -----------------------------------


def cost(model: Model, counts: dict[str, int], at: datetime) -> Decimal:
    """USD for these usage counts (by genai-prices' usage keys: input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens; any other unit counts nothing, but the request itself counts one) at `at`."""
    prices = model.prices_at(at).prices
    priced = [(units()[key], price) for key, price in prices]
    leaves = _leaf_counts([unit for unit, _ in priced if unit.usage != "requests"], counts)
    leaves["requests"] = 1
    tiered = any(isinstance(price, tuple) for _, price in priced)
    total_input = counts.get("input_tokens", 0) if tiered else 0
    total = Decimal(0)
    for unit, price in priced:
        if isinstance(price, tuple):  # the highest tier the whole input passes applies to every token
            base, tiers = price
            price = next((p for start, p in reversed(tiers) if total_input > start), base)
        total += price * Decimal(leaves[unit.usage]) / unit.per
    return total


def _leaf_counts(priced: list[Unit], counts: dict[str, int]) -> dict[str, int]:
    """Each priced unit's count less those of its more specific priced units: with a cache-read price, cached input
    tokens are not also input tokens (genai-prices' decompose.compute_leaf_values)."""
    leaves: dict[str, int] = {}
    for unit in sorted(priced, key=lambda u: (-len(u.dimensions), u.usage)):
        inner = sum(leaves[d.usage] for d in priced if d is not unit and unit.dimensions <= d.dimensions)
        leaves[unit.usage] = counts.get(unit.usage, 0) - inner
        if leaves[unit.usage] < 0:
            raise ValueError(f"Invalid usage data: more specific usage exceeds {unit.usage}")
    return leaves
