"""Lambda REQUEST authorizer for every protected route: a session JWT or an API key.

API Gateway answers 401 when this raises "Unauthorized"; otherwise the caller travels as context."""

from typing import Any

import psycopg

from echo_control import auth, config, db
from echo_control.errors import EchoError, ServiceUnavailable
from echo_control.observability import logger

config.settings()  # a wrong variable stops the cold start, not each request


# No tracer decorator: it would log every refused credential as an error with a traceback.
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return auth.authorizer_policy(event)
    except (ServiceUnavailable, psycopg.OperationalError):
        # Not the caller's fault: failing here makes API Gateway answer AUTHORIZER_FAILURE (503, Retry-After).
        db.discard_connection()
        raise
    except EchoError as exc:
        logger.info("request refused", extra={"reason": exc.message})
        raise Exception("Unauthorized") from None
