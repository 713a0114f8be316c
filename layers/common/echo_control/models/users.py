"""Users, sign-in sessions and /api/me."""

from typing import Literal

from echo_control.models.apps import EchoAppOut, EchoAppPublic
from echo_control.models.base import (
    CamelModel,
    Email,
    Name,
    RequestModel,
)


class UserOut(CamelModel):
    id: str
    email: str
    name: str | None = None
    role: Literal["user", "admin"]


class DevSessionIn(RequestModel):
    email: Email
    name: Name | None = None


class DevSessionOut(CamelModel):
    token: str
    user: UserOut


class MeOut(CamelModel):
    user: UserOut
    auth_type: Literal["user", "apiKey"]
    echo_app: EchoAppOut | EchoAppPublic | None = None  # a customer's key: the app's public view
