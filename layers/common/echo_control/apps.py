"""Echo apps: create, list with usage totals, details, update; each visible only to its owner, except the public
view (id, name, description, markup) a customer gets, and the customers list its owner gets."""

import re
from collections.abc import Callable
from typing import Any
from uuid import UUID

from echo_control import db, keys, ledger, pricing
from echo_control.errors import NotFound, Unprocessable
from echo_control.identity import Caller, as_uuid
from echo_control.models import (
    AppBalanceOut,
    AppMoney,
    AppPrices,
    BalanceOut,
    CustomerList,
    CustomerOut,
    EchoAppCreate,
    EchoAppCreated,
    EchoAppDetail,
    EchoAppList,
    EchoAppOut,
    EchoAppPublic,
    EchoAppUpdate,
    ModelUsage,
    PriceOverride,
    SeedAppStats,
    SeedEchoApp,
    UsageTotals,
)

RECENT_TRANSACTIONS = 20
MAX_CUSTOMERS_LISTED = 1000


def totals_from(row: dict[str, Any]) -> UsageTotals:
    return UsageTotals(
        calls=row["calls"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        total_tokens=row["total_tokens"],
        provider_cost=row["cost"] - row["markup_amount"],
        markup_amount=row["markup_amount"],
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
        accepts_customers=row["accepts_customers"],
        redirect_uris=row["redirect_uris"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        totals=totals,
        total_tokens=totals.total_tokens if totals else None,
        total_cost=totals.cost if totals else None,
    )


def create_app(user_id: UUID, body: EchoAppCreate) -> EchoAppCreated:
    row = db.insert_app(user_id, body.name, body.description, body.markup, body.accepts_customers)
    app = to_out(row, UsageTotals())
    return EchoAppCreated(**app.model_dump(), echo_app=app)


def list_apps(user_id: UUID, key_app_id: UUID | None = None) -> EchoAppList:
    """The user's apps; for an API key (as the seed's SDK asks), just the key's own app."""
    rows = db.apps_with_totals(user_id)
    if key_app_id is not None:
        rows = [r for r in rows if r["id"] == key_app_id]
    return EchoAppList(echo_apps=[to_out(r, totals_from(r)) for r in rows])


def balance(who: Caller, user_id: UUID, app_id: str | None) -> BalanceOut:
    """The user's balance; with the app it is asked for (see balance_app), that app's name and its part of it."""
    base = ledger.get_balance(user_id)
    app = balance_app(who, user_id, app_id)
    if app is None:
        return base
    money = db.app_money(app["id"], user_id)
    return AppBalanceOut(
        **base.model_dump(),
        echo_app_id=str(app["id"]),
        echo_app_name=app["name"],
        app=AppMoney(total_paid=money["total_paid"], total_spent=money["total_spent"]),
    )


def balance_app(who: Caller, user_id: UUID, app_id: str | None) -> dict[str, Any] | None:
    """The app a balance is asked for: ?echoAppId= (one the user owns or uses), else an API key's own app (as the
    seed's SDK expects), else none. A key naming another app is 404, as any other app is."""
    if who.echo_app_id is not None:
        if app_id is not None and as_uuid(app_id) != who.echo_app_id:
            raise NotFound("Echo app not found")
        app_id = str(who.echo_app_id)
    return used_app(user_id, app_id) if app_id is not None else None


def owned_app(user_id: UUID, app_id: str | UUID) -> dict[str, Any]:
    """The app's row if this user owns it; a missing app and another user's app are both 404."""
    parsed = as_uuid(app_id)
    row = db.app_for_owner(parsed, user_id) if parsed else None
    if row is None:
        raise NotFound("Echo app not found")
    return row


def app_for_user(user_id: UUID, app_id: str | UUID | None) -> dict[str, Any]:
    """The app's row with `relation`: 'owner', 'customer', or 'open' (it accepts customers and this user is not
    one yet). Another user's app that does not accept customers is 404, exactly like a missing one."""
    parsed = as_uuid(app_id)
    row = db.app_for_user(parsed, user_id) if parsed else None
    if row is None:
        raise NotFound("Echo app not found")
    return row


def joining_app_name(path: str) -> str | None:
    """The app a sign-in leads to when it comes from a join link (`/join/<id>`), if the app is open to customers:
    the sign-in page names it, so a person following the link knows what they are signing in for."""
    match = re.fullmatch(r"/join/([^/?#]+)", path)
    app_id = as_uuid(match.group(1)) if match else None
    return db.open_app_name(app_id) if app_id else None


def used_app(user_id: UUID, app_id: str | UUID | None) -> dict[str, Any]:
    """The app's row if this user owns it or is its customer (404 otherwise)."""
    row = app_for_user(user_id, app_id)
    if row["relation"] == "open":
        raise NotFound("Echo app not found")
    return row


def public_view(row: dict[str, Any]) -> EchoAppPublic:
    return EchoAppPublic(id=str(row["id"]), name=row["name"], description=row["description"], markup=row["markup"])


def app_view(user_id: UUID, app_id: str, key_app_id: UUID | None = None) -> EchoAppDetail | EchoAppPublic:
    """The owner's view of the app, or for anyone else who may see it (a customer, or a user invited to become one)
    its public view. An API key may read its own app only (another app is 404)."""
    if key_app_id is not None and as_uuid(app_id) != key_app_id:
        raise NotFound("Echo app not found")
    row = app_for_user(user_id, app_id)
    if row["relation"] != "owner":
        return public_view(row)
    return app_details(user_id, app_id)


def key_app(user_id: UUID, app_id: UUID) -> EchoAppOut | EchoAppPublic:
    """An API key's own app: the owner's key sees the app, a customer's key its public view."""
    row = used_app(user_id, app_id)
    return to_out(row) if row["relation"] == "owner" else public_view(row)


def app_details(user_id: UUID, app_id: str) -> EchoAppDetail:
    """An owner's view of the app: usage by model, the owner's keys, recent transactions (every user's)."""
    row = owned_app(user_id, app_id)
    by_model = [ModelUsage(model=r["model"], **totals_from(r).model_dump()) for r in db.usage_by_model(row["id"])]
    totals = UsageTotals.sum(by_model)
    recent = ledger.app_transactions(row["id"], limit=RECENT_TRANSACTIONS)
    app = to_out(row, totals)
    stats = SeedAppStats(
        total_transactions=totals.calls,
        total_tokens=totals.total_tokens,
        total_input_tokens=totals.input_tokens,
        total_output_tokens=totals.output_tokens,
        total_cost=totals.cost,
        model_usage=by_model,
    )
    return EchoAppDetail(
        **app.model_dump(),
        usage_by_model=by_model,
        api_keys=keys.keys_for_app(user_id, row["id"]),
        recent_transactions=recent,
        echo_app=SeedEchoApp(**app.model_dump(), stats=stats, recent_transactions=recent),
    )


def update_app(user_id: UUID, app_id: str, body: EchoAppUpdate) -> EchoAppOut:
    parsed = as_uuid(app_id)
    changes = body.model_dump(exclude_unset=True, by_alias=False)
    row = db.update_app(parsed, user_id, changes) if parsed else None
    if row is None:
        raise NotFound("Echo app not found")
    return to_out(row)


# --- the app's own prices ----------------------------------------------------------------------------


def _prices_out(allowed: list[str] | None, overrides: list[dict[str, Any]]) -> AppPrices:
    return AppPrices(
        allowed_models=allowed,
        overrides=[
            PriceOverride(
                model=o["model"],
                input_per_million=o["input_per_million"],
                output_per_million=o["output_per_million"],
                cache_read_per_million=o["cache_read_per_million"],
                cache_write_per_million=o["cache_write_per_million"],
            )
            for o in overrides
        ],
    )


def app_prices(user_id: UUID, app_id: str, key_app_id: UUID | None = None) -> AppPrices:
    """The models the app allows and its own prices; an API key may read its own app's (another app is 404)."""
    if key_app_id is not None and as_uuid(app_id) != key_app_id:
        raise NotFound("Echo app not found")
    row = owned_app(user_id, app_id)
    return _prices_out(*db.app_prices(row["id"]))


def set_app_prices(user_id: UUID, app_id: str, body: AppPrices) -> AppPrices:
    """Replaces the app's allowed models and overrides as a whole, in one transaction: a call is priced either
    entirely by the old prices or entirely by the new."""
    return edit_app_prices(user_id, app_id, lambda _: body)


def check_prices(body: AppPrices) -> None:
    """An allowed model must be one the price list knows or one the app prices itself (a fine-tune), and a price of
    the app's own must be for a model it allows: otherwise the owner's list would silently refuse or never charge."""
    priced = {pricing.model_key(o.model) for o in body.overrides}
    if body.allowed_models is None:
        return
    allowed = {pricing.model_key(m) for m in body.allowed_models}
    for model in body.allowed_models:
        if pricing.model_key(model) not in priced and not pricing.is_priced(model):
            raise Unprocessable(
                f"Allowed models: '{model}' is not in the price list; check its name, or give it a price of your own",
                details={"field": "allowedModels", "model": model, "closeMatches": pricing.close_matches(model)},
                code="unknown_model",
            )
    for override in body.overrides:
        if pricing.model_key(override.model) not in allowed:
            raise Unprocessable(
                f"Prices: '{override.model}' is not among the allowed models; allow it, or remove its price",
                details={"field": "overrides", "model": override.model},
                code="price_not_allowed",
            )


def edit_app_prices(user_id: UUID, app_id: str | UUID, edit: Callable[[AppPrices], AppPrices]) -> AppPrices:
    """Changes the app's prices in one transaction holding the app's lock: `edit` gets the prices as they are and
    returns them as they should be (the dashboard's forms change one part and keep the rest)."""
    parsed = as_uuid(app_id)
    with db.transaction() as conn:
        if parsed is None or db.lock_app_prices(conn, parsed, user_id) is None:
            raise NotFound("Echo app not found")
        body = edit(_prices_out(*db.app_prices(parsed, conn)))
        check_prices(body)
        allowed = None if body.allowed_models is None else [(m, pricing.model_key(m)) for m in body.allowed_models]
        overrides = [{**o.model_dump(by_alias=False), "model_key": pricing.model_key(o.model)} for o in body.overrides]
        db.replace_app_prices(conn, parsed, allowed, overrides)
        return _prices_out(*db.app_prices(parsed, conn))


def customers(user_id: UUID, app_id: str) -> CustomerList:
    """The owner's list of the app's customers, newest first, with what each spent on it."""
    row = owned_app(user_id, app_id)
    return CustomerList(
        customers=[
            CustomerOut(
                user_id=str(r["user_id"]),
                email=r["email"],
                first_seen=r["first_seen"],
                calls=r["calls"],
                spent=r["spent"],
            )
            for r in db.customers_of_app(row["id"], MAX_CUSTOMERS_LISTED)
        ]
    )


def apps_used(user_id: UUID) -> list[dict[str, Any]]:
    """The apps this user is a customer of, with their calls and spend on each (the dashboard's list)."""
    return db.apps_used_by(user_id)


def key_choices(user_id: UUID) -> list[dict[str, str]]:
    """The apps this user may make a key for ({id, name}): their own, then those they are a customer of."""
    owned = [{"id": str(r["id"]), "name": r["name"]} for r in db.apps_with_totals(user_id)]
    used = [{"id": str(u["id"]), "name": u["name"]} for u in db.apps_used_by(user_id)]
    return owned + used


def history_scope(user_id: UUID, app_id: str | None) -> tuple[UUID | None, UUID | None]:
    """How `?echoAppId=` narrows a user's history, as (app_scope, echo_app_id): an owner sees every call to their
    app (app_scope), a customer their own calls to it (echo_app_id); any other app is 404."""
    if app_id is None:
        return None, None
    row = used_app(user_id, app_id)
    return (row["id"], None) if row["relation"] == "owner" else (None, row["id"])
