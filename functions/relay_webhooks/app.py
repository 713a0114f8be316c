"""Feeds the webhook queue from the outbox (an EventBridge schedule, every minute; no HTTP route): deliveries not
yet queued, or overdue because their message was lost, go on the queue delayed until they are due
(echo_control.webhook_delivery.relay)."""

import functools
from typing import Any

from echo_control import config, housekeeping, webhook_delivery
from echo_control.observability import logger, metrics

config.settings()  # a wrong variable stops the cold start, not each run


@functools.cache
def _sqs() -> Any:
    import boto3  # the Lambda runtime's

    return boto3.client("sqs")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    housekeeping.ScheduledEvent.model_validate(event)
    queue_url = config.settings().webhook_queue_url
    if queue_url is None:  # the template always sets it; without it (a local run) the local runner delivers
        if config.settings().in_cloud:
            raise config.misconfigured("ECHO_WEBHOOK_QUEUE_URL is not set")
        return {"queued": 0}
    return {"queued": webhook_delivery.relay(_sqs, queue_url)}
