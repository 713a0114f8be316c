"""Writes the layer's price snapshot (`make prices`): genai-prices' providers, models, match rules and every price
with the date or time of day it applies from, as compact JSON files that `echo_control.price_snapshot` reads in a few
milliseconds (importing genai-prices and its data takes ~0.5 s, once per container, on a user's first priced call).

tests/test_pricing.py checks that the snapshot is what this makes of the locked genai-prices, and that it prices
every model as genai-prices does; after `make lock UPGRADE=1`, run `make prices`."""

import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any


def _clause(clause: Any) -> dict[str, Any]:
    """A match rule as genai-prices writes it in its own data: {"equals": …}, {"or": [...]}, …"""
    from genai_prices import types

    if isinstance(clause, types.ClauseOr):
        return {"or": [_clause(c) for c in clause.or_]}
    if isinstance(clause, types.ClauseAnd):
        return {"and": [_clause(c) for c in clause.and_]}
    for name in ("equals", "starts_with", "ends_with", "contains", "regex"):
        if hasattr(clause, name):
            return {name: getattr(clause, name)}
    raise ValueError(f"unknown match rule {clause!r}")


def _price(value: Any) -> str | dict[str, Any]:
    from genai_prices import types

    if isinstance(value, types.TieredPrices):
        return {"base": str(value.base), "tiers": [[tier.start, str(tier.price)] for tier in value.tiers]}
    assert isinstance(value, Decimal), value
    return str(value)


def _when(constraint: Any) -> dict[str, str] | None:
    from genai_prices import types

    if constraint is None:
        return None
    if isinstance(constraint, types.StartDateConstraint):
        return {"startDate": constraint.start_date.isoformat()}
    if isinstance(constraint, types.TimeOfDateConstraint):
        return {"startTime": constraint.start_time.isoformat(), "endTime": constraint.end_time.isoformat()}
    raise ValueError(f"unknown price constraint {constraint!r}")


def _prices(model: Any) -> list[dict[str, Any]]:
    """A model's prices, each with the constraint under which it applies (genai-prices tries them last to first)."""
    from genai_prices import types

    conditionals = [types.ConditionalPrice(prices=model.prices)] if not isinstance(model.prices, list) else model.prices
    return [
        {
            "when": _when(conditional.constraint),
            "prices": {k: _price(v) for k, v in conditional.prices.__dict__.items() if v is not None},
        }
        for conditional in conditionals
    ]


def snapshot() -> dict[str, Any]:
    import genai_prices
    from genai_prices.data import providers
    from genai_prices.units import _get_registry

    registry = _get_registry()
    used = {key for p in providers for m in p.models for c in _prices(m) for key in c["prices"]}
    return {
        "package": "genai-prices",
        "version": genai_prices.__version__,
        # What each price key counts and per how many: the tokens a price applies to are those of its unit minus
        # those of its more specific priced units (cached input is not also charged as input).
        "units": {
            key: {"usage": unit.usage_key, "per": unit.per, "dimensions": dict(unit.dimensions)}
            for key in sorted(used)
            if (unit := registry.unit_for_price_key(key))
        },
        "providers": [
            {
                "id": provider.id,
                "modelMatch": provider.model_match and _clause(provider.model_match),
                "providerMatch": provider.provider_match and _clause(provider.provider_match),
                "fallbackProviders": provider.fallback_model_providers or [],
                "models": [
                    {"id": m.id, "name": m.name, "match": _clause(m.match), "prices": _prices(m)}
                    for m in provider.models
                ],
            }
            for provider in providers
        ],
    }


def render() -> dict[str, str]:
    """The snapshot's files: index.json (the package, its units and providers) and one file per provider with its
    models, one model per line (a priced call reads the index and its provider's file only; an upgrade's diff shows
    which prices changed)."""
    data = snapshot()
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    files = {}
    for provider in data["providers"]:
        assert re.fullmatch(r"[a-z0-9_-]+", provider["id"]), provider["id"]
        lines = [json.dumps(model, **compact) for model in provider.pop("models")]  # type: ignore[arg-type]
        files[f"{provider['id']}.json"] = "[\n" + ",\n".join(lines) + "\n]\n"
    files["index.json"] = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    return files


def write(folder: Path) -> None:
    """Replaces the folder's snapshot with the installed package's."""
    folder.mkdir(exist_ok=True)
    files = render()
    for stale in set(p.name for p in folder.glob("*.json")) - files.keys():
        (folder / stale).unlink()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]))
