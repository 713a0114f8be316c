"""Sends developers' webhooks (an SQS queue's consumer; no HTTP route): each message names a delivery of the
outbox. One sent, or no longer pending, is done; one to try again stays on the queue, invisible until its next
attempt is due (the backoff), and is reported as a batch item failure (echo_control.webhook_delivery)."""

import functools
from typing import Any

from echo_control import config, webhook_delivery
from echo_control.observability import logger, metrics

config.settings()  # a wrong variable stops the cold start, not each batch


@functools.cache
def _sqs() -> Any:
    import boto3  # the Lambda runtime's

    return boto3.client("sqs")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    queue_url = config.settings().webhook_queue_url or ""
    return webhook_delivery.handle_queue_batch(event, _sqs, queue_url)
