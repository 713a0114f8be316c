"""CloudFormation custom resources: the migrations run on deploy and the Cognito client's settings.

CloudFormation invokes the function with a request (Create, Update or Delete) and waits for the answer at the
request's ResponseURL (a presigned S3 URL): SUCCESS, or FAILED with a reason, which fails the deploy and rolls it
back. Our own ~30 lines rather than crhelper: it speaks HTTPS only (no loopback server in the tests), retries forever
when the URL cannot be reached and sets up the root logger; nor cfnresponse, which Lambda provides only to inline code.
"""

import json
import urllib.request
from collections.abc import Callable
from typing import Any

from echo_control.observability import logger

REQUEST_KEYS = {"RequestType", "ResponseURL", "StackId", "RequestId", "LogicalResourceId"}
REASON_LIMIT = 1000  # characters of an error CloudFormation shows in the stack's events


def is_request(event: Any) -> bool:
    return isinstance(event, dict) and event.keys() >= REQUEST_KEYS


def answer(
    event: dict[str, Any], context: Any, work: Callable[[dict[str, Any]], dict[str, Any]], physical_id: str
) -> dict[str, Any]:
    """Runs `work` on the resource's properties for a Create or an Update (a Delete leaves everything as it is),
    then tells CloudFormation how it went. Returns what was sent."""
    data: dict[str, Any] = {}
    try:
        if event["RequestType"] in ("Create", "Update"):
            data = work(event.get("ResourceProperties") or {})
        status, reason = "SUCCESS", "done"
    except Exception as exc:
        logger.exception("custom resource failed", extra={"request": event["RequestType"]})
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"
    stream = getattr(context, "log_stream_name", "")
    body = {
        "Status": status,
        "Reason": f"{reason[: REASON_LIMIT - len(stream) - 20]} (log stream {stream})",
        # the same id on every request: an update is never a replacement (which would delete the old one)
        "PhysicalResourceId": event.get("PhysicalResourceId") or physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": data,
    }
    send(event["ResponseURL"], body)
    return body


def send(url: str, body: dict[str, Any]) -> None:
    if not url.startswith(("https://", "http://")):
        raise ValueError("the ResponseURL is not an HTTP(S) URL")
    payload = json.dumps(body).encode()
    # S3's presigned PUT: no Content-Type (it is part of the signature, which CloudFormation made without one).
    request = urllib.request.Request(url, data=payload, method="PUT", headers={"Content-Type": ""})  # noqa: S310
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 - scheme checked above
                logger.info("answered CloudFormation", extra={"status": body["Status"], "http": response.status})
                return
        except OSError:
            logger.exception("could not answer CloudFormation", extra={"attempt": attempt + 1})
    raise RuntimeError("could not answer CloudFormation at the ResponseURL")
