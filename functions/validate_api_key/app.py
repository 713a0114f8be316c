"""POST /api/validate-api-key — how an LLM proxy checks a key: {valid, userId, echoAppId}."""

from typing import Annotated

from echo_control import keys
from echo_control.http import Body, entrypoint, make_resolver
from echo_control.models import ValidateApiKeyIn, ValidateApiKeyOut

app = make_resolver()


@app.post("/api/validate-api-key", tags=["API keys"])
def validate_api_key(body: Annotated[ValidateApiKeyIn, Body()]) -> ValidateApiKeyOut:
    return keys.validate(body.api_key)


lambda_handler = entrypoint(app)
