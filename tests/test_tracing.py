"""Tracing as deployed: the X-Ray SDK is loaded only for an invocation X-Ray samples, and then it does trace."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A fresh interpreter as a Lambda container: two invocations, unsampled then sampled, of a traced handler.
CONTAINER = """
import json, os, sys
from echo_control.observability import tracer

@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event, context):
    return {"sdk_loaded": "aws_xray_sdk" in sys.modules}

root = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"
os.environ["_X_AMZN_TRACE_ID"] = root + ";Sampled=0"
unsampled = lambda_handler({}, None)
os.environ["_X_AMZN_TRACE_ID"] = root + ";Sampled=1"
sampled = lambda_handler({}, None)
print(json.dumps({"unsampled": unsampled, "sampled": sampled}))
"""


def test_xray_sdk_loads_only_for_a_sampled_invocation_and_then_traces() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:  # the X-Ray daemon's UDP port, as in Lambda
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(10)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_SAM"))},
            "PYTHONPATH": str(ROOT / "layers" / "common"),
            "LAMBDA_TASK_ROOT": str(ROOT),
            "AWS_LAMBDA_FUNCTION_NAME": "TracedFunction",
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            "AWS_REGION": "us-east-1",
        }
        result = subprocess.run(
            [sys.executable, "-c", CONTAINER], env=env, capture_output=True, text=True, check=True, timeout=60
        )
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        assert outcome == {"unsampled": {"sdk_loaded": False}, "sampled": {"sdk_loaded": True}}, result.stderr
        datagram = daemon.recv(65535).decode()
    header, segment = datagram.split("\n", 1)
    assert json.loads(header)["format"] == "json"
    sent = json.loads(segment)
    assert sent["name"] == "## lambda_handler"
    assert sent["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert sent["annotations"]["ColdStart"] is False  # the container's first invocation was the unsampled one
