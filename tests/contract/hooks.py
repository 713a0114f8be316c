"""Schemathesis hooks: keep generated valid requests within the rules a JSON Schema cannot express."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import schemathesis

KNOWN_MODEL = "gpt-4o-mini"


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    query = case.query if isinstance(case.query, dict) else None
    body = case.body if isinstance(case.body, dict) else None
    if query is not None:
        query.pop("cursor", None)  # opaque: only a cursor the API handed out is valid
        query.pop("userId", None)  # naming another user is an admin's privilege (403 otherwise)
        if case.operation.path.endswith(("/usage", "/earnings")):
            query.pop("from", None)  # a usage or earnings range spans at most 732 days and must not run backwards:
            query.pop("to", None)  # tests/test_analytics.py covers ranges
        elif "from" in query and "to" in query:
            query.pop("from")  # from must not be after to; one bound alone is always valid
    if body is not None:
        path = case.operation.path
        if path == "/api/api-keys" and body.get("expiresAt"):
            body["expiresAt"] = (datetime.now(UTC) + timedelta(days=30)).isoformat()  # must be in the future
        if path == "/api/holds":  # an amount (above zero), or a model with its token ceilings
            amount = body.get("amount")
            if amount is not None and Decimal(str(amount)).quantize(Decimal("0.000001")) > 0:
                for field in ("model", "provider", "maxInputTokens", "maxOutputTokens"):
                    body.pop(field, None)
            else:
                body.pop("amount", None)
                body.pop("provider", None)
                body.update(model=KNOWN_MODEL, maxInputTokens=1000, maxOutputTokens=100)
        if path in ("/api/transactions", "/api/holds/{id}/settle"):
            if body.get("cost") is None:
                body["model"] = KNOWN_MODEL  # without a cost the model must be priced (by its own provider)
                body.pop("provider", None)
            # cached tokens are part of the input, reasoning tokens part of the output
            inputs, outputs = body.get("inputTokens"), body.get("outputTokens")  # JSON integers, maybe as 2.0
            if (
                isinstance(inputs, int | float)
                and body.get("cacheReadTokens", 0) + body.get("cacheWriteTokens", 0) > inputs
            ):
                body["cacheReadTokens"], body["cacheWriteTokens"] = int(inputs), 0
            if isinstance(outputs, int | float) and body.get("reasoningTokens", 0) > outputs:
                body["reasoningTokens"] = int(outputs)
        if path.endswith("/prices"):
            # names that match the same model (without case or a provider prefix) are refused as duplicates
            if isinstance(body.get("allowedModels"), list):
                body["allowedModels"] = _distinct(body["allowedModels"], lambda name: name)
            if isinstance(body.get("overrides"), list):
                body["overrides"] = _distinct(body["overrides"], lambda override: override.get("model", ""))
        amount = body.get("amount")
        # the deployment's minimum payout (ECHO_MIN_PAYOUT_USD) is not in the schema
        if path == "/api/payouts" and isinstance(amount, str | int | float) and Decimal(str(amount)) < 10:
            body["amount"] = "10.00"
        if path == "/api/webhooks":
            body["url"] = "https://hooks.example.com/echo"  # a host that is not private (checked when resolved)
        if path == "/api/balance/auto-top-up":
            # all three numbers are needed while nothing is stored, and a monthly limit holds at least one charge
            body.setdefault("threshold", "5.00")
            body.setdefault("amount", "20.00")
            body.setdefault("monthlyLimit", "100.00")
            if _number(body["monthlyLimit"]) < _number(body["amount"]):
                body["monthlyLimit"] = body["amount"]
        if path == "/api/balance" and Decimal(str(body.get("amount", 0))) == 0:
            body["amount"] = "1.00"  # a zero adjustment is refused (amounts are decimal strings or numbers)
    return case


def _number(value: Any) -> Decimal:
    return Decimal(str(value)) if isinstance(value, str | int | float) else Decimal(0)


def _distinct(items: list[Any], name_of: Any) -> list[Any]:
    """The items whose model names differ by more than case and a prefix up to a slash (a provider's, or more)."""
    seen, kept = set(), []
    for item in items:
        name = name_of(item)
        key = name.strip().lower().rsplit("/", 1)[-1] if isinstance(name, str) else name
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept
