"""A person's connected apps (Sign in with Echo): what the consent page shows, the list, and disconnecting."""

from typing import Any
from uuid import UUID

from echo_control import db
from echo_control.errors import NotFound
from echo_control.identity import as_uuid
from echo_control.models import ConnectedApp


def owner_of(app: dict[str, Any]) -> str:
    return str(app["owner_name"] or app["owner_email"])


def may_connect(user_id: UUID, app: dict[str, Any]) -> bool:
    """Whether this person may sign in to the app: its owner, its customer, or anyone when it takes customers."""
    return db.app_for_user(app["id"], user_id) is not None


def consent_view(user_id: UUID, app: dict[str, Any]) -> dict[str, Any]:
    """What the consent page says about the app: who runs it, its markup, and whether this person may connect."""
    return {
        "app": {"id": str(app["id"]), "name": app["name"], "description": app["description"], "markup": app["markup"]},
        "owner": owner_of(app),
        "may_connect": may_connect(user_id, app),
    }


def connected_apps(user_id: UUID) -> list[ConnectedApp]:
    return [
        ConnectedApp(
            id=str(row["id"]),
            name=row["name"],
            description=row["description"],
            markup=row["markup"],
            owner=owner_of(row),
            connected_at=row["connected_at"],
            last_used_at=row["last_used_at"],
        )
        for row in db.connected_apps(user_id)
    ]


def disconnect(user_id: UUID, app_id: str) -> ConnectedApp:
    """Ends every grant this person gave the app: its access and refresh tokens stop on their next use."""
    connected = next((app for app in connected_apps(user_id) if app.id == str(as_uuid(app_id))), None)
    if connected is None:
        raise NotFound("This app is not connected to your account")
    with db.transaction() as conn:
        db.revoke_oauth_grants(conn, "disconnected", user_id=user_id, app_id=UUID(connected.id))
    return connected
