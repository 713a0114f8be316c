"""The cloud's path for developers' webhooks, on moto's SQS: the relay puts due deliveries from the outbox on the
queue, the delivery function sends each one, and a failed one stays on the queue, invisible for its backoff, then
comes back and is sent again with the same webhook-id. template.yaml declares that queue, its dead-letter queue
and an alarm on the latter's depth."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from standardwebhooks import Webhook

from echo_control import db, webhook_delivery
from local_runner import template
from local_runner.lambdas import LambdaContext, load_handler
from tests.test_webhooks import Receiver, add_endpoint, deliveries_of, pay, running_receiver

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="webhooks-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(
            QueueName="webhooks",
            Attributes={
                "VisibilityTimeout": "360",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "20"}),
            },
        )["QueueUrl"]
        monkeypatch.setenv("ECHO_WEBHOOK_QUEUE_URL", url)
        monkeypatch.setenv("ECHO_WEBHOOKS_ALLOW_PRIVATE", "true")
        yield sqs, url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


def receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    """What the event source mapping would hand the function: every visible message, as Lambda's records."""
    records = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
        messages = got.get("Messages", [])
        if not messages:
            return records
        records += [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "eventSource": "aws:sqs",
            }
            for m in messages
        ]


def run_function(sqs: Any, url: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The delivery function (its handler, as Lambda runs it) on a batch, then what the event source mapping does
    with its answer: the messages not reported as failures are deleted."""
    handler = load_handler(template.load().functions["DeliverWebhooksFunction"])
    answer = handler({"Records": records}, LambdaContext("deliver_webhooks"))
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    for record in records:
        if record["messageId"] not in failed:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    return answer


def relay() -> dict[str, Any]:
    handler = load_handler(template.load().functions["RelayWebhooksFunction"])
    return handler(json.loads((ROOT / "events" / "relay_webhooks.json").read_text()), LambdaContext("relay_webhooks"))


def ours(records: list[dict[str, Any]], delivery_id: Any) -> list[dict[str, Any]]:
    return [r for r in records if json.loads(r["body"])["deliveryId"] == str(delivery_id)]


def test_a_delivery_goes_through_the_queue_fails_waits_its_backoff_and_succeeds(
    api, user, receiver: Receiver, queue
) -> None:
    sqs, url = queue
    endpoint = add_endpoint(user, receiver.url, ["payment.succeeded"])
    receiver.statuses = [500]
    pay(api, user, "9")
    [delivery] = deliveries_of(endpoint["id"])
    assert relay()["queued"] >= 1
    assert relay()["queued"] == 0 or not ours(receive(sqs, url), delivery["id"])  # queued once, not twice
    records = receive(sqs, url)
    mine = ours(records, delivery["id"])
    assert len(mine) == 1
    answer = run_function(sqs, url, mine)
    assert answer == {"batchItemFailures": [{"itemIdentifier": mine[0]["messageId"]}]}
    [delivery] = deliveries_of(endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("pending", 1, 500)
    # invisible for the backoff (5 s), then back
    assert ours(receive(sqs, url), delivery["id"]) == []
    time.sleep(5.5)
    again = ours(receive(sqs, url), delivery["id"])
    assert len(again) == 1 and again[0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert run_function(sqs, url, again) == {"batchItemFailures": []}
    [delivery] = deliveries_of(endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("succeeded", 2, 200)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1 and len(receiver.received) == 2
    for got in receiver.received:
        Webhook(endpoint["secret"]).verify(got.body, got.headers)
    # done: the message is gone, and a stray duplicate of it is simply acknowledged
    assert ours(receive(sqs, url), delivery["id"]) == []
    duplicate = {"messageId": "dup", "receiptHandle": "x", "body": json.dumps({"deliveryId": str(delivery["id"])})}
    answer = webhook_delivery.handle_queue_batch({"Records": [duplicate]}, lambda: sqs, url)
    assert answer == {"batchItemFailures": []}
    assert len(receiver.received) == 2


def test_a_message_that_comes_early_waits_and_a_lost_one_is_queued_again(api, user, receiver: Receiver, queue) -> None:
    sqs, url = queue
    endpoint = add_endpoint(user, receiver.url, ["payment.succeeded"])
    pay(api, user, "9")
    [delivery] = deliveries_of(endpoint["id"])
    relay()
    db.connection().execute(  # its next attempt moved two hours ahead since it was queued
        "UPDATE webhook_deliveries SET next_attempt_at = now() + interval '2 hours' WHERE id = %s", [delivery["id"]]
    )
    mine = ours(receive(sqs, url), delivery["id"])
    assert len(mine) == 1
    assert run_function(sqs, url, mine)["batchItemFailures"] == [{"itemIdentifier": mine[0]["messageId"]}]
    assert receiver.received == []  # not due: nothing sent, the message hidden until it is
    assert deliveries_of(endpoint["id"])[0]["attempts"] == 0
    # the message is lost (say, dead-lettered): once the delivery is overdue by 15 minutes the relay queues it again
    sqs.purge_queue(QueueUrl=url)
    assert ours(receive(sqs, url), delivery["id"]) == []
    assert relay()["queued"] == 0 or not ours(receive(sqs, url), delivery["id"])  # not overdue yet
    db.connection().execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() - interval '16 minutes' WHERE id = %s",
        [delivery["id"]],
    )
    relay()
    mine = ours(receive(sqs, url), delivery["id"])
    assert len(mine) == 1
    assert run_function(sqs, url, mine) == {"batchItemFailures": []}
    assert deliveries_of(endpoint["id"])[0]["status"] == "succeeded"


def test_the_template_declares_the_queue_its_dead_letter_queue_and_an_alarm_on_it() -> None:
    doc = yaml.load((ROOT / "template.yaml").read_text(), Loader=template._CfnLoader)  # noqa: S506 - SafeLoader
    resources = doc["Resources"]
    queue = resources["WebhookQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}
    # the longest backoff (10 h) fits SQS's 12-hour visibility limit; messages outlive a delivery's 24 hours
    assert max(webhook_delivery.BACKOFF).total_seconds() <= webhook_delivery.MAX_VISIBILITY_SECONDS
    assert queue["MessageRetentionPeriod"] > 24 * 3600
    assert queue["RedrivePolicy"]["maxReceiveCount"] > len(webhook_delivery.BACKOFF) + 1
    consumer = resources["DeliverWebhooksFunction"]["Properties"]
    sqs_event = consumer["Events"]["Queue"]
    assert sqs_event["Type"] == "SQS" and sqs_event["Properties"]["Queue"] == {"Fn::GetAtt": ["WebhookQueue", "Arn"]}
    assert sqs_event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert queue["VisibilityTimeout"] >= 6 * consumer["Timeout"]
    alarm = resources["WebhookDeadLetterAlarm"]["Properties"]
    assert alarm["Namespace"] == "AWS/SQS" and alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    depth_of = {"Fn::GetAtt": ["WebhookDeadLetterQueue", "QueueName"]}
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": depth_of}]
    relay_fn = resources["RelayWebhooksFunction"]["Properties"]
    assert relay_fn["Events"]["Schedule"]["Properties"]["Schedule"] == "rate(1 minute)"
    assert relay_fn["Environment"]["Variables"]["ECHO_WEBHOOK_QUEUE_URL"] == {"Ref": "WebhookQueue"}


def test_a_delivery_not_yet_due_is_queued_with_a_delay(api, user, receiver: Receiver, queue) -> None:
    sqs, url = queue
    endpoint = add_endpoint(user, receiver.url, ["payment.succeeded"])
    pay(api, user, "9")
    [delivery] = deliveries_of(endpoint["id"])
    db.connection().execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() + interval '10 minutes' WHERE id = %s",
        [delivery["id"]],
    )
    relay()
    assert ours(receive(sqs, url), delivery["id"]) == []  # on the queue, delayed until it is due
    assert db.connection().execute(
        "SELECT queued_at IS NOT NULL AS queued FROM webhook_deliveries WHERE id = %s", [delivery["id"]]
    ).fetchone() == {"queued": True}
