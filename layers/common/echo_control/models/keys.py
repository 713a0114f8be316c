"""API keys: creation, listing and validation."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import StringConstraints, model_validator

from echo_control.models.base import (
    NO_NUL,
    AwareDateTime,
    CamelModel,
    Id,
    Name,
    RequestModel,
    SpendLimit,
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
    spend_limit: Decimal | None = None  # USD the key may spend per limitPeriod (UTC); null: no limit
    limit_period: Literal["day", "month", "total"] | None = None
    spent_in_period: Decimal | None = None  # what it spent in the current period, when it has a limit


class ApiKeyCreate(RequestModel):
    echo_app_id: Id
    name: Name | None = None
    expires_at: AwareDateTime | None = None
    spend_limit: SpendLimit | None = None
    limit_period: Literal["day", "month", "total"] | None = None

    @model_validator(mode="after")
    def _limit_with_period(self) -> "ApiKeyCreate":
        """A limit without a period is monthly; a period without a limit means nothing and is dropped."""
        if self.spend_limit is None:
            self.limit_period = None
        elif self.limit_period is None:
            self.limit_period = "month"
        return self


class ApiKeyWithKey(ApiKeyOut):
    key: str  # the only time the full key is ever shown


class ApiKeyCreated(ApiKeyWithKey):
    api_key: ApiKeyWithKey  # seed compatibility: the same key under the seed's wrapper


class ApiKeyList(CamelModel):
    api_keys: list[ApiKeyOut]


class ValidateApiKeyIn(RequestModel):
    api_key: Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]


class KeyUser(CamelModel):
    id: str
    email: str
    name: str | None


class KeyApp(CamelModel):
    id: str
    name: str


class ValidateApiKeyOut(CamelModel):
    valid: bool
    # why a well-formed key is not valid now: "key_limit_exceeded" until its period resets (resetsAt; null for a
    # limit in total)
    reason: str | None = None
    resets_at: datetime | None = None
    user_id: str | None = None
    echo_app_id: str | None = None
    # Seed compatibility: its proxy caches who the key is for and which app it serves.
    user: KeyUser | None = None
    echo_app: KeyApp | None = None
    balance: Decimal | None = None
    held: Decimal | None = None
    available: Decimal | None = None
    # what can be spent now: max(available, 0), and at most what the key's limit has left
    spendable: Decimal | None = None
