"""POST /api/transactions — record one LLM call and debit its cost (API key; Idempotency-Key for retries)."""

from typing import Annotated, Any

from echo_control import events, ledger, observability
from echo_control.http import API_KEY, Body, IdempotencyKey, Response, created, entrypoint, key_caller, make_resolver
from echo_control.models import TransactionCreate, TransactionRecorded

app = make_resolver()


@app.post(
    "/api/transactions",
    security=API_KEY,
    tags=["Transactions"],
    responses={
        201: {"description": "Recorded", "content": {"application/json": {"model": TransactionRecorded}}},
        402: {"description": "The balance does not cover the cost; nothing is recorded"},
        403: {"description": "The app does not allow this model (model_not_allowed), or the caller is not an API key"},
        409: {"description": "This API key used this Idempotency-Key with a different request"},
    },
)
def record_transaction(
    body: Annotated[TransactionCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[dict[str, Any]]:
    who = key_caller(app)
    with events.reporting_key_limit(who.api_key_id):
        outcome = ledger.record_transaction(who, body, idempotency_key)
    if not outcome.replayed:
        observability.count("TransactionsRecorded")
    return created(outcome)


lambda_handler = entrypoint(app)
