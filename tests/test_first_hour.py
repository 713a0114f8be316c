"""What a newcomer runs into in their first hour with the API and its documents: amounts documented as the API
reads them, validation messages a person can act on, the model catalogue in pages."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_payout_amount_is_documented_as_dollars_as_the_api_reads_it() -> None:
    document = json.loads((ROOT / "layers/common/echo_control/openapi.json").read_text())
    schema = document["paths"]["/api/payouts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    amount = schema["properties"]["amount"]
    described = amount.get("description", "") + json.dumps(amount.get("anyOf", []))
    assert "dollars" in described and '"15.00"' in described.replace('\\"', '"')
    assert not re.search(r"(?<!not )\bin cents\b", described), described
    limits = document["info"]["description"]
    assert "payouts in cents" not in limits
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| POST | `/api/payouts` |"))
    assert "in cents" not in row and '"15.00"' in row
