"""Echo apps: create, list with usage totals, details, update; each visible only to its owner."""

from typing import Any
from uuid import UUID

from echo_control import db, keys, ledger
from echo_control.errors import NotFound
from echo_control.identity import as_uuid
from echo_control.models import (
    EchoAppCreate,
    EchoAppDetail,
    EchoAppList,
    EchoAppOut,
    EchoAppUpdate,
    ModelUsage,
    UsageTotals,
)

RECENT_TRANSACTIONS = 20


def totals_from(row: dict[str, Any]) -> UsageTotals:
    return UsageTotals(
        calls=row["calls"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        total_tokens=row["total_tokens"],
        cost=row["cost"],
    )


def to_out(row: dict[str, Any], totals: UsageTotals | None = None) -> EchoAppOut:
    return EchoAppOut(
        id=str(row["id"]),
        name=row["name"],
        description=row["description"],
        user_id=str(row["user_id"]),
        markup=row["markup"],
        is_active=row["is_active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        totals=totals,
    )


def create_app(user_id: UUID, body: EchoAppCreate) -> EchoAppOut:
    row = db.insert_app(user_id, body.name, body.description, body.markup)
    return to_out(row, UsageTotals())


def list_apps(user_id: UUID) -> EchoAppList:
    return EchoAppList(echo_apps=[to_out(r, totals_from(r)) for r in db.apps_with_totals(user_id)])


def owned_app(user_id: UUID, app_id: str | UUID) -> dict[str, Any]:
    """The app's row if this user owns it; a missing app and another user's app are both 404."""
    parsed = as_uuid(app_id)
    row = db.app_for_owner(parsed, user_id) if parsed else None
    if row is None:
        raise NotFound("Echo app not found")
    return row


def app_details(user_id: UUID, app_id: str) -> EchoAppDetail:
    row = owned_app(user_id, app_id)
    by_model = [ModelUsage(model=r["model"], **totals_from(r).model_dump()) for r in db.usage_by_model(row["id"])]
    totals = UsageTotals(
        calls=sum(m.calls for m in by_model),
        input_tokens=sum(m.input_tokens for m in by_model),
        output_tokens=sum(m.output_tokens for m in by_model),
        total_tokens=sum(m.total_tokens for m in by_model),
        cost=sum((m.cost for m in by_model), start=UsageTotals().cost),
    )
    recent = ledger.app_transactions(row["id"], limit=RECENT_TRANSACTIONS)
    return EchoAppDetail(
        **to_out(row, totals).model_dump(),
        usage_by_model=by_model,
        api_keys=keys.keys_for_app(user_id, row["id"]),
        recent_transactions=recent,
    )


def update_app(user_id: UUID, app_id: str, body: EchoAppUpdate) -> EchoAppOut:
    parsed = as_uuid(app_id)
    changes = body.model_dump(exclude_unset=True, by_alias=False)
    row = db.update_app(parsed, user_id, changes) if parsed else None
    if row is None:
        raise NotFound("Echo app not found")
    return to_out(row)
