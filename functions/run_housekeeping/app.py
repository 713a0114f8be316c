"""Scheduled housekeeping (an EventBridge schedule, every 15 minutes; no HTTP route): purges Idempotency-Key
records older than 24 hours, expires pending payments no checkout can pay any more, and clears expired page
flashes and finished rate-limit windows. Each run is bounded and idempotent (echo_control.housekeeping)."""

from typing import Any

from echo_control import config, housekeeping
from echo_control.observability import logger, metrics

config.settings()  # a wrong variable stops the cold start, not each run


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int | bool]:
    schedule = housekeeping.ScheduledEvent.model_validate(event)
    logger.append_keys(schedule_event_id=schedule.id, scheduled_for=schedule.time.isoformat())
    return housekeeping.run_housekeeping()
