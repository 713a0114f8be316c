"""What a newcomer runs into in their first hour with the API and its documents: amounts documented as the API
reads them, validation messages a person can act on, the model catalogue in pages."""

import json
import re
from pathlib import Path

from conftest import Api, Session

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


def test_a_blank_app_name_over_the_api_is_refused_in_words(user: Session) -> None:
    for name in ("", "   ", "tab\there"):
        reply = user.call("POST", "/api/echo-apps", {"name": name})
        assert reply.status == 422 and reply.error_code == "validation_error", reply.body
        [detail] = reply.body["error"]["details"]
        assert detail["field"] == "name" and detail["type"] == "string_pattern_mismatch"
        assert detail["message"] == "String must have a visible character and no control characters"
    text = user.call("POST", "/api/echo-apps", {"name": "ok", "description": "bell\x07"}).body["error"]["details"]
    assert text[0]["message"] == "String must not contain control characters other than tabs and line breaks"


def test_the_price_list_comes_in_pages_that_add_up_to_the_whole_list(api: Api) -> None:
    first = api.call("GET", "/api/models")
    assert first.status == 200
    assert (first.body["page"], first.body["limit"], first.body["nextPage"]) == (1, 100, 2)
    assert len(first.body["models"]) == 100 and first.body["total"] > 2000
    seen, page = [], 1
    while page is not None:
        reply = api.call("GET", "/api/models", query={"page": page, "limit": 500})
        assert reply.status == 200 and len(reply.body["models"]) <= 500
        seen += [(m["provider"], m["model"]) for m in reply.body["models"]]
        page = reply.body["nextPage"]
    assert len(seen) == len(set(seen)) == first.body["total"]
    assert seen[:100] == [(m["provider"], m["model"]) for m in first.body["models"]]
    searched = api.call("GET", "/api/models", query={"q": "gpt-4o", "limit": 5})
    assert searched.body["total"] > 5 and searched.body["nextPage"] == 2 and len(searched.body["models"]) == 5
    past = api.call("GET", "/api/models", query={"page": 1000})
    assert past.status == 200 and past.body["models"] == [] and past.body["nextPage"] is None
    for bad in ({"limit": 0}, {"limit": 501}, {"page": 0}, {"page": "x"}):
        assert api.call("GET", "/api/models", query=bad).status == 422, bad


def test_the_models_page_is_one_page_of_the_list_not_all_of_it(api: Api) -> None:
    shown = api.call("GET", "/models")
    assert shown.status == 200 and len(shown.body.encode()) < 80_000  # 709 KB when it listed every model
    assert len(re.findall(r'<td class="model-name">', shown.body)) == 100
    assert 'href="?page=2"' in shown.body and "Page 1 of" in shown.body
    second = api.call("GET", "/models", query={"page": 2})
    assert 'href="?page=1"' in second.body and 'href="?page=3"' in second.body
    searched = api.call("GET", "/models", query={"q": "claude"})
    assert "?q=claude&amp;page=2" in searched.body or "Page" not in searched.body


def test_api_gateway_compresses_responses() -> None:
    import yaml

    from local_runner import template

    document = yaml.load(template.TEMPLATE.read_text(), Loader=template._CfnLoader)  # noqa: S506 (a SafeLoader)
    apis = [r["Properties"] for r in document["Resources"].values() if r["Type"] == "AWS::Serverless::Api"]
    assert apis and all(0 <= api["MinimumCompressionSize"] <= 10_240 for api in apis)
