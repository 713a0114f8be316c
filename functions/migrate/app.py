"""Applies pending database migrations: on every deploy that changes them (CloudFormation invokes it as the custom
resource Migrations, template.yaml), or when invoked directly (sam remote invoke MigrateFunction)."""

import time
from typing import Any

import psycopg

from echo_control import config, custom_resource, db
from echo_control.observability import logger

config.settings()  # a wrong variable stops the cold start, not each request
# On a stack's first deploy the database proxy may still be registering its target: retry a refused connection
# while this much time remains (the function's timeout is 300 s).
RETRY_UNTIL_REMAINING_MS = 60_000
RETRY_PAUSE_SECONDS = 10


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if custom_resource.is_request(event):
        return custom_resource.answer(event, context, lambda _: {"Applied": len(migrate(context))}, "migrations")
    return {"applied": migrate(context)}


def migrate(context: Any) -> list[str]:
    while True:
        try:
            applied = db.apply_migrations()
        except psycopg.OperationalError:
            if context.get_remaining_time_in_millis() < RETRY_UNTIL_REMAINING_MS:
                raise
            logger.warning("database unreachable, retrying", exc_info=True)
            time.sleep(RETRY_PAUSE_SECONDS)
            continue
        logger.info("migrations applied", extra={"applied": applied})
        return applied
