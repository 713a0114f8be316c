"""The API's OpenAPI document and its Swagger UI page.

`make openapi` generates openapi.json beside this module from the functions' own routes and models; the layer
ships it, so the document a deployment serves is the one checked in (tests fail when it drifts from the code).
"""

import functools
import json
from pathlib import Path
from typing import Any

DOCUMENT_PATH = Path(__file__).with_name("openapi.json")


@functools.cache
def _document() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
    return spec


@functools.cache
def _swagger_assets() -> tuple[str, str]:
    """Swagger UI's script and styles (1.7 MB), read once per container rather than per request."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    assets = Path(swagger_ui.__file__).parent
    return (
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
    )


def base_path(event: dict[str, Any]) -> str:
    """Where this API is mounted: "/Prod" on an execute-api host, "" on a custom domain or the local runner."""
    context_path = (event.get("requestContext") or {}).get("path") or ""
    path = event.get("path") or ""
    return context_path[: -len(path)] if path and context_path.endswith(path) else ""


def document(event: dict[str, Any]) -> dict[str, Any]:
    """The document with this deployment as its server, so "Try it out" calls the API it came from."""
    return {**_document(), "servers": [{"url": base_path(event) or "/", "description": "This deployment"}]}


def docs_page(event: dict[str, Any]) -> str:
    """Swagger UI with its script and styles inlined (no CDN), as Powertools ships them."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    script, styles = _swagger_assets()
    spec = json.dumps(document(event)).replace("</", "<\\/")  # never close the script element early
    page = swagger_ui.generate_swagger_html(
        spec,
        script,
        styles,
        swagger_base_url="",
        oauth2_config=None,
        persist_authorization=False,
    )
    return page.replace("<title>Swagger UI</title>", "<title>Echo Control API</title>", 1)
