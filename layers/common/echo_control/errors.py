"""Typed errors: the layer raises these, the HTTP layer maps each to its status in one place."""

from typing import Any


class EchoError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code


class BadRequest(EchoError):
    status, code = 400, "bad_request"


class Unauthorized(EchoError):
    status, code = 401, "unauthorized"


class PaymentRequired(EchoError):
    status, code = 402, "insufficient_balance"


class Forbidden(EchoError):
    status, code = 403, "forbidden"


class NotFound(EchoError):
    status, code = 404, "not_found"


class Conflict(EchoError):
    status, code = 409, "conflict"


class PayloadTooLarge(EchoError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(EchoError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(EchoError):
    status, code = 422, "validation_error"


class TooManyRequests(EchoError):
    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after


class BadGateway(EchoError):
    """A provider we depend on (Stripe) failed or did not answer; what we recorded says how to go on."""

    status, code = 502, "provider_unavailable"


class ServiceUnavailable(EchoError):
    status, code = 503, "service_unavailable"
    retry_after = 2


class ConfigurationError(ServiceUnavailable):
    """The deployment is misconfigured (a missing or malformed secret): refused, never worked around."""

    status, code = 503, "configuration_error"
