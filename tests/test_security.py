"""The whole URL map, walked: who may read what, and every write needs role and CSRF.

Adding a route makes these tests list it; a public or write route must then be declared
here on purpose, with the roles it admits.
"""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.routing import Rule

from layers.query import FeatureQuery
from tests.support import csrf_token, login

# Routes anyone may read, without logging in.
PUBLIC = {"static", "vendor.vendor", "auth.login", "inspector.index", "public.index",
          "public.embed", "public.features", "public.feature", "public.report",
          "public.report_status", "public_tiles.public_tileset", "public_tiles.public_tile"}
# Writes and who may make them; every one also needs a CSRF token.
WRITES: dict[str, tuple[str, ...]] = {
    "auth.login": ("anonymous", "admin", "planner", "inspector"),
    "auth.logout": ("admin", "planner", "inspector"),
    "auth.change_password": ("admin", "planner", "inspector"),
    "accounts.create": ("admin",),
    "accounts.set_role": ("admin",),
    "accounts.disable": ("admin",),
    "accounts.enable": ("admin",),
    "accounts.reset": ("admin",),
    "public.report": ("anonymous", "admin", "planner", "inspector"),
    "hotspots.edit": ("admin", "planner", "inspector"),
    "hotspots.inspect": ("admin", "planner", "inspector"),
    "hotspots.status": ("admin", "planner", "inspector"),
    "hotspots.new": ("admin", "planner", "inspector"),
    "manage.settings": ("admin", "planner"),
    "manage.restore": ("admin", "planner"),
    "manage.publish_upload": ("admin", "planner"),
    "manage.discard": ("admin", "planner"),
    "manage.upload": ("admin", "planner"),
    "manage_api.api_import": ("admin", "planner"),
    "public_maps.new": ("admin", "planner"),
    "public_maps.edit": ("admin", "planner"),
}
READ_ROLES: dict[str, tuple[str, ...]] = {
    "admin.": ("admin",), "accounts.": ("admin",), "manage.": ("admin", "planner"),
    "public_maps.": ("admin", "planner"),
}
ARGS = {"slug": "hotspots", "feature_id": 1, "photo_id": 1, "version": 1,
        "token": "x" * 24, "map_slug": "default", "layer_slug": "hotspots", "code": "PA-X",
        "filename": "leaflet/dist/leaflet.js", "username": "inspector", "z": 0, "x": 0, "y": 0}


def url(app: Flask, rule: Rule) -> str:
    with app.test_request_context():
        return app.url_for(rule.endpoint, **{a: ARGS[a] for a in rule.arguments})


def rules(app: Flask, method: str) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if method in r.methods]


def test_every_write_route_is_declared(app):
    declared = set(WRITES)
    found = {r.endpoint for r in rules(app, "POST")}
    assert found == declared & found and found <= declared, found ^ declared


def test_anonymous_visitors_only_read_public_routes(app, client):
    for rule in rules(app, "GET"):
        if rule.endpoint in PUBLIC:
            continue
        response = client.get(url(app, rule))
        assert response.status_code in (302, 401), (rule.rule, response.status_code)
        if response.status_code == 302:
            assert response.headers["Location"].startswith("/login"), rule.rule


def test_pages_for_some_roles_refuse_the_others(app):
    for rule in rules(app, "GET"):
        prefix = next((p for p in READ_ROLES if rule.endpoint.startswith(p)), None)
        if prefix is None:
            continue
        for role in ("admin", "planner", "inspector"):
            client = login(app.test_client(), role)
            status = client.get(url(app, rule)).status_code
            if role in READ_ROLES[prefix]:
                assert status != 403, (rule.rule, role)
            else:
                assert status == 403, (rule.rule, role, status)


@pytest.mark.parametrize("role", ["anonymous", "inspector", "planner", "admin"])
def test_every_write_needs_the_right_role_and_a_csrf_token(app, role):
    for rule in rules(app, "POST"):
        allowed = WRITES[rule.endpoint]
        client = app.test_client()
        if role != "anonymous":
            login(client, role)
        target = url(app, rule)
        without = client.post(target, data={"x": "1"})
        assert without.status_code == 400, (rule.rule, role, without.status_code)
        token = csrf_token(client, "/login" if role == "anonymous" else "/map")
        with_token = client.post(target, data={"csrf_token": token},
                                 headers={"X-CSRFToken": token})
        if role in allowed:
            assert with_token.status_code != 403, (rule.rule, role)
        elif role == "anonymous":
            assert with_token.status_code in (302, 401), (rule.rule, with_token.status_code)
        else:
            assert with_token.status_code == 403, (rule.rule, role, with_token.status_code)


def test_a_write_without_csrf_changes_nothing(app):
    store = app.extensions["gis_store"]
    client = login(app.test_client(), "admin")
    before = store.query_features("hotspots", FeatureQuery(limit=1)).features[0]
    client.post(f"/hotspots/hotspots/{before.id}/status",
                data={"to": "verified", "note": "x", "version": before.version})
    client.post("/layers/hotspots/settings", data={"title": "Bị đổi", "public": "on"})
    assert store.get_feature("hotspots", before.id).version == before.version
    assert store.get_layer("hotspots").title != "Bị đổi"
