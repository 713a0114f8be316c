"""Sends automatic top-up charges to Stripe (an EventBridge schedule, every minute; no HTTP route): each charge a
statement requested when it took what a user can spend below their threshold becomes an off-session PaymentIntent
(echo_control.auto_top_up.run_scheduled). Charges in flight for too long are counted for their alarm."""

from typing import Any

from echo_control import auto_top_up, config, housekeeping
from echo_control.observability import logger, metrics

config.settings()  # a wrong variable stops the cold start, not each run


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    housekeeping.ScheduledEvent.model_validate(event)
    return auto_top_up.run_scheduled()
