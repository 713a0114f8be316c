"""Sign in with Echo: the token endpoint's answers (RFC 6749 names, snake_case) and a person's connected apps."""

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel

from echo_control.models.base import CamelModel


class TokenOut(BaseModel):
    """RFC 6749 5.1: what POST /oauth/token answers (with Cache-Control: no-store)."""

    access_token: str  # echo_at_…: send as Authorization: Bearer on the metering routes; 1 hour
    token_type: str  # "Bearer"
    expires_in: int  # seconds the access token lives
    refresh_token: str  # echo_rt_…: good for exactly one refresh; presenting it again ends the grant


class OAuthErrorOut(BaseModel):
    """RFC 6749 5.2: invalid_request, invalid_client, invalid_grant, unauthorized_client, unsupported_grant_type."""

    error: str
    error_description: str | None = None


class ConnectedApp(CamelModel):
    """An app the person signed in to with Echo and has not disconnected."""

    id: str
    name: str
    description: str | None
    markup: Decimal
    owner: str  # the owner's name, or their email
    connected_at: datetime
    last_used_at: datetime | None
