"""Applies pending database migrations (invoke once after each deploy: sam remote invoke MigrateFunction)."""

from typing import Any

from echo_control import config, db
from echo_control.observability import logger

config.settings()  # a wrong variable stops the cold start, not each request


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    applied = db.apply_migrations()
    logger.info("migrations applied", extra={"applied": applied})
    return {"applied": applied}
