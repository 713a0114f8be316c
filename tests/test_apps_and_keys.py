"""Echo apps and API keys: the owner sees and changes their own; everyone else gets 404 or 403."""

import uuid

import pytest


def test_create_list_get_and_update_an_app(user) -> None:
    app = user.create_app("Chatbot", description="  answers questions  ", markup="1.5")
    assert app["name"] == "Chatbot" and app["description"] == "answers questions"
    assert app["markup"] == "1.5000" and app["isActive"] is True
    assert app["totals"] == {
        "calls": 0,
        "inputTokens": 0,
        "outputTokens": 0,
        "totalTokens": 0,
        "providerCost": "0",
        "markupAmount": "0",
        "cost": "0",
    }

    listed = user.call("GET", "/api/echo-apps").body["echoApps"]
    assert [a["id"] for a in listed] == [app["id"]]

    updated = user.call("PUT", f"/api/echo-apps/{app['id']}", {"name": "Chatbot 2", "markup": "2"})
    assert updated.status == 200
    assert updated.body["name"] == "Chatbot 2" and updated.body["markup"] == "2.0000"
    assert updated.body["description"] == "answers questions"  # untouched fields stay

    detail = user.call("GET", f"/api/echo-apps/{app['id']}").body
    assert detail["name"] == "Chatbot 2"
    assert detail["usageByModel"] == [] and detail["apiKeys"] == [] and detail["recentTransactions"] == []


def test_another_users_app_and_key_are_404_on_every_route(user, other_user) -> None:
    app = user.create_app()
    key = user.create_key(app["id"])
    missing = str(uuid.uuid4())
    for target in (app["id"], missing, "not-a-uuid"):
        assert other_user.call("GET", f"/api/echo-apps/{target}").status == 404
        assert other_user.call("PUT", f"/api/echo-apps/{target}", {"name": "mine now"}).status == 404
        assert other_user.call("GET", f"/api/echo-apps/{target}/usage").status == 404
        reply = other_user.call("POST", "/api/api-keys", {"echoAppId": target})
        assert reply.status == 404 and reply.error_code == "not_found"
        assert other_user.call("GET", "/api/transactions", query={"echoAppId": target}).status == 404
    for target in (key["id"], missing, "not-a-uuid"):
        assert other_user.call("DELETE", f"/api/api-keys/{target}").status == 404
    # the owner's view shows nothing of the other user, and nothing changed
    assert other_user.call("GET", "/api/echo-apps").body["echoApps"] == []
    assert other_user.call("GET", "/api/api-keys").body["apiKeys"] == []
    assert user.call("GET", f"/api/echo-apps/{app['id']}").body["name"] == app["name"]
    assert user.call("GET", "/api/api-keys").body["apiKeys"][0]["isActive"] is True


def test_user_id_query_is_for_admins_only(user, other_user, admin) -> None:
    app = user.create_app("Seen by admin")
    for path in ("/api/echo-apps", "/api/api-keys", "/api/balance", "/api/transactions"):
        refused = other_user.call("GET", path, query={"userId": user.user["id"]})
        assert refused.status == 403, path
        assert refused.error_code == "forbidden"
        assert user.call("GET", path, query={"userId": user.user["id"]}).status == 200, path  # oneself is fine
        assert admin.call("GET", path, query={"userId": user.user["id"]}).status == 200, path
    apps = admin.call("GET", "/api/echo-apps", query={"userId": user.user["id"]}).body["echoApps"]
    assert [a["id"] for a in apps] == [app["id"]]
    assert admin.call("GET", "/api/echo-apps", query={"userId": str(uuid.uuid4())}).status == 404


def test_fields_a_client_must_not_set_are_refused_and_not_applied(user, other_user) -> None:
    for extra in ({"userId": other_user.user["id"]}, {"id": str(uuid.uuid4())}, {"createdAt": "2020-01-01T00:00:00Z"}):
        reply = user.call("POST", "/api/echo-apps", {"name": "x", **extra})
        assert reply.status == 422, extra
    app = user.create_app()
    reply = user.call("PUT", f"/api/echo-apps/{app['id']}", {"userId": other_user.user["id"]})
    assert reply.status == 422
    assert user.call("GET", f"/api/echo-apps/{app['id']}").body["userId"] == user.user["id"]
    assert user.call("POST", "/api/api-keys", {"echoAppId": app["id"], "userId": other_user.user["id"]}).status == 422
    assert other_user.call("GET", "/api/api-keys").body["apiKeys"] == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"name": ""}, 422),
        ({"name": "   "}, 422),
        ({"name": "x" * 101}, 422),
        ({"name": 42}, 422),
        ({"name": "ok", "description": "d" * 1001}, 422),
        ({"name": "ok", "markup": "0.5"}, 422),
        ({"name": "ok", "markup": "NaN"}, 422),
        ({"name": "bad\x00name"}, 400),
        ([], 422),
        ("just a string", 422),
    ],
)
def test_bad_app_input_is_a_clear_4xx_and_creates_nothing(user, body, status) -> None:
    reply = user.call("POST", "/api/echo-apps", body)
    assert reply.status == status, reply.body
    assert set(reply.body["error"]) == {"code", "message", "details"}
    assert user.call("GET", "/api/echo-apps").body["echoApps"] == []


def test_malformed_json_is_400(user) -> None:
    reply = user.call("POST", "/api/echo-apps", data="{not json", headers={"Content-Type": "application/json"})
    assert reply.status == 400 and reply.error_code == "invalid_json"


def test_update_rejects_nulls_for_required_fields(user) -> None:
    app = user.create_app()
    assert user.call("PUT", f"/api/echo-apps/{app['id']}", {"name": None}).status == 422
    assert user.call("PUT", f"/api/echo-apps/{app['id']}", {"description": None}).status == 200


def test_api_keys_cannot_manage_apps_and_sessions_cannot_meter(key_holder, user) -> None:
    assert key_holder.call("POST", "/api/echo-apps", {"name": "Another"}).status == 403
    assert key_holder.call("PUT", f"/api/echo-apps/{key_holder.app['id']}", {"name": "Renamed"}).status == 403
    assert key_holder.call("POST", "/api/api-keys", {"echoAppId": key_holder.app["id"]}).status == 403
    reply = user.call("POST", "/api/transactions", {"model": "gpt-4o", "inputTokens": 1, "outputTokens": 1})
    assert reply.status == 403 and reply.error_code == "api_key_required"


def test_an_api_key_reads_its_own_app_and_no_other(key_holder, user) -> None:
    other_app = user.create_app("Same owner, other app")
    listed = key_holder.call("GET", "/api/echo-apps")
    assert listed.status == 200
    assert [a["id"] for a in listed.body["echoApps"]] == [key_holder.app["id"]]
    own = key_holder.call("GET", f"/api/echo-apps/{key_holder.app['id']}")
    assert own.status == 200 and own.body["echoApp"]["id"] == key_holder.app["id"]
    assert key_holder.call("GET", f"/api/echo-apps/{other_app['id']}").status == 404
