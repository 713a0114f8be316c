"""API keys: creation, listing and validation."""

from datetime import datetime
from typing import Annotated

from pydantic import StringConstraints

from echo_control.models.base import (
    NO_NUL,
    AwareDateTime,
    CamelModel,
    Id,
    Name,
    RequestModel,
)


class ApiKeyOut(CamelModel):
    id: str
    name: str | None
    key_prefix: str
    last4: str
    echo_app_id: str
    user_id: str
    is_active: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyCreate(RequestModel):
    echo_app_id: Id
    name: Name | None = None
    expires_at: AwareDateTime | None = None


class ApiKeyWithKey(ApiKeyOut):
    key: str  # the only time the full key is ever shown


class ApiKeyCreated(ApiKeyWithKey):
    api_key: ApiKeyWithKey  # seed compatibility: the same key under the seed's wrapper


class ApiKeyList(CamelModel):
    api_keys: list[ApiKeyOut]


class ValidateApiKeyIn(RequestModel):
    api_key: Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]


class ValidateApiKeyOut(CamelModel):
    valid: bool
    user_id: str | None = None
    echo_app_id: str | None = None
