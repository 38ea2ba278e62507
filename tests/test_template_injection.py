"""Template text sent by users and planted in files and the store is never evaluated.

branca renders what Folium builds a second time as a Jinja template, so a value that
reached Folium would run (``{{7*7}}`` → ``49``, ``lipsum.__globals__`` → a shell). Each
payload goes in the way an attacker would send it (query strings, forms, uploads) and
must come back as its literal text, with no 500. A structural test then shows that no
data can reach a template at all.
"""

from __future__ import annotations

import ast
import io
import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from shapely.geometry import Point, box

from layers.store import PublicMap
from tests.support import csrf_token, login, make_app, map_config

ROOT = Path(__file__).resolve().parents[1]
# 6007*7 = 42049 as a number of its own (random tokens and ids may hold the digits) proves
# an evaluation.
EVALUATED = re.compile(r"(?<![\w-])42049(?![\w-])")
PAYLOADS = ("{{ 6007*7 }}", "{{7*7}}", "{% if 1 %}x{% endif %}", "{# x", "{{ lipsum }}",
            "{{ config }}")
ALL = " ".join(PAYLOADS)


def page_text(response) -> str:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    text = response.get_data(as_text=True)
    assert not EVALUATED.search(text), EVALUATED.search(text)
    assert "SECRET_KEY" not in text and "<Config" not in text
    assert "function generate_lorem_ipsum" not in text  # {{ lipsum }} evaluated
    return text


def literal_in(payload: str, text: str) -> bool:
    """Whether ``payload`` is in a page as text: raw, HTML-escaped or JSON-escaped."""
    escaped = payload.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;")
    return payload in text or escaped in text or json.dumps(payload)[1:-1] in text


@pytest.fixture
def planted(tmp_path: Path) -> Flask:
    """The sample city with every title, ward name and public map name set to payloads."""
    app = make_app(tmp_path / "app.sqlite", TILE_URL="")
    store = app.extensions["gis_store"]
    for layer in store.list_layers():
        store.update_layer(layer.slug, title=f"{layer.slug} {ALL}", public=True)
    store.create_layer("payload-wards", ALL, "ward", public=True, features=[
        (box(106.83 + 0.01 * i, 11.545, 106.838 + 0.01 * i, 11.552),
         {"code": f"9999{i}", "name": p, "type": "phuong"}) for i, p in enumerate(PAYLOADS)])
    store.add_features("hotspots", [
        (Point(106.85, 11.52), {"name": ALL, "description": ALL, "category": "other",
                                "severity": 2, "status": "verified",
                                "reported_at": "2024-05-01", "ward": "99990"})])
    store.save_public_map(PublicMap("payloads", ALL, ("hotspots", "payload-wards")))
    store.save_public_map(PublicMap("default", ALL, ("hotspots", "payload-wards")))
    return app


@pytest.mark.parametrize("path", ["/map", "/public", "/embed/payloads", "/public/report"])
def test_stored_payloads_stay_text_on_every_map_page(planted: Flask, path: str) -> None:
    client = login(planted.test_client(), "inspector")
    text = page_text(client.get(path))
    config = map_config(text)
    titles = [la["title"] for la in config["layers"]]
    assert titles and all(ALL in t for t in titles), titles
    if path != "/public/report":
        assert set(PAYLOADS) <= set(config["ward_names"].values())
    if path.startswith(("/public", "/embed")) and path != "/public/report":
        assert literal_in(ALL, text.split("<body", 1)[1].split("gis-map-config")[0])  # brand


def test_a_template_comment_in_a_title_is_no_500(planted: Flask) -> None:
    store = planted.extensions["gis_store"]
    store.update_layer("hotspots", title="{# x {% if")
    client = planted.test_client()
    for path in ("/public", "/embed/payloads"):
        assert page_text(client.get(path)).count("{# x {% if") >= 1
    login(client, "inspector")
    assert "{# x {% if" in page_text(client.get("/map"))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_query_parameters_are_never_evaluated(client: FlaskClient, payload: str) -> None:
    login(client, "inspector")
    for query in ({"ward": payload}, {"reported_from": payload}, {payload: "1"},
                  {"status": payload}):
        response = client.get("/map", query_string=query)
        text = page_text(response)
        if response.status_code == 200:
            params = {la["slug"]: la["params"] for la in map_config(text)["layers"]}
            assert [payload] in params["hotspots"].values(), params
        else:
            assert response.status_code == 400
    lang = page_text(client.get("/public", query_string={"lang": payload}))
    assert "gis-map-config" in lang


def geojson_upload(client: FlaskClient, name: str, column: str) -> str:
    """Uploads a GeoJSON whose file name, column name and values are ``name``/``column``."""
    data = json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [106.85, 11.52]},
         "properties": {column: column, "ten": name}}]}).encode()
    response = client.post("/layers/upload", data={
        "file": (io.BytesIO(data), f"{name}.geojson"),
        "csrf_token": csrf_token(client, "/layers/")}, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_uploaded_names_and_preview_options_stay_text(client: FlaskClient,
                                                      payload: str) -> None:
    login(client, "planner")
    token_url = geojson_upload(client, payload, payload)
    preview = page_text(client.get(token_url))
    assert literal_in(payload, preview)  # the file name, the column and its value
    assert map_config(preview)["layers"]
    for option in ("dataset", "encoding", "crs", "kind"):
        page_text(client.get(token_url, query_string={option: payload}))
    published = client.post(token_url, data={
        "csrf_token": csrf_token(client, token_url), "kind": "generic", "title": payload,
        "slug": "payload-layer", "public": "on", "confirm": "on"})
    assert published.status_code == 302, published.get_data(as_text=True)
    # Column names become safe field names; the original name is kept as the label.
    labels = [f["vi"] for f in client.get("/api/layers/payload-layer").json["fields"]]
    assert payload in labels, labels
    text = page_text(client.get("/map"))
    layer = next(la for la in map_config(text)["layers"] if la["slug"] == "payload-layer")
    assert layer["title"] == payload and payload in [f["label"] for f in layer["fields"]]
    assert literal_in(payload, page_text(client.get("/layers/")))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_public_map_names_and_report_fields_stay_text(client: FlaskClient,
                                                      payload: str) -> None:
    login(client, "planner")
    new = "/layers/public-maps/new"
    saved = client.post(new, data={
        "csrf_token": csrf_token(client, new), "slug": "ban-do", "title": payload,
        "layers": ["hotspots"], "view": "bounds", "min_lon": "106.8", "min_lat": "11.5",
        "max_lon": "106.9", "max_lat": "11.56", "controls": ["legend"]})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    assert literal_in(payload, page_text(client.get("/layers/public-maps/")))
    assert literal_in(payload, page_text(client.get("/embed/ban-do")))
    client.get("/logout")
    sent = client.post("/public/report", data={
        "csrf_token": csrf_token(client, "/public/report"), "lat": "11.52", "lon": "106.85",
        "category": "odour", "description": payload, "contact": payload, "website": ""})
    if sent.status_code == 302:
        status_page = page_text(client.get(sent.headers["Location"]))
        assert "PA-" in status_page
    else:  # refused: the form comes back with what was typed
        assert literal_in(payload, page_text(sent))


def test_the_folium_shell_is_the_same_whatever_the_data(planted: Flask,
                                                        tmp_path: Path) -> None:
    """No value from the store reaches what branca renders: with every title and ward name
    replaced, Folium's output differs only in its random element ids and the nonce."""
    plain = make_app(tmp_path / "plain.sqlite", TILE_URL="")
    store = plain.extensions["gis_store"]
    store.create_layer("payload-wards", "Phường", "ward", public=True, features=[
        (box(106.83 + 0.01 * i, 11.545, 106.838 + 0.01 * i, 11.552),
         {"code": f"8888{i}", "name": f"P{i}", "type": "phuong"}) for i in range(len(PAYLOADS))])
    store.add_features("hotspots", [
        (Point(106.85, 11.52), {"name": "x", "description": "y", "category": "other",
                                "severity": 2, "status": "verified",
                                "reported_at": "2024-05-01", "ward": "88880"})])
    for layer in store.list_layers():
        store.update_layer(layer.slug, public=True)
    store.save_public_map(PublicMap("payloads", "Bản đồ", ("hotspots", "payload-wards")))

    def shell(app: Flask, path: str) -> str:
        client = login(app.test_client(), "inspector")
        text = page_text(client.get(path))
        folium_parts = re.sub(r'<script type="application/json".*?</script>', "", text, flags=re.S)
        folium_parts = re.findall(r"<script nonce[^>]*>(.*?)</script>", folium_parts, re.S)
        return re.sub(r"_[0-9a-f]{32}", "_ID", "\n".join(folium_parts))

    for path in ("/map", "/embed/payloads"):
        assert shell(plain, path) == shell(planted, path), path


TEMPLATE_MODULES = ("jinja2", "branca", "flask", "markupsafe")
# Calls that turn text into a template or into a branca element that renders as one.
TEMPLATE_BUILDERS = {"Template", "Environment", "from_string", "render_template_string",
                     "stream_template_string", "Element", "MacroElement", "Html",
                     "JavascriptLink", "CssLink"}


def template_names(tree: ast.Module) -> set[str]:
    """Local names bound to the template engines' builders by this module's imports."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(TEMPLATE_MODULES):
            names |= {a.asname or a.name for a in node.names if a.name in TEMPLATE_BUILDERS}
        elif isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names
                      if a.name.startswith(TEMPLATE_MODULES)}
    return names


def test_no_code_builds_a_template_from_data() -> None:
    """Templates are built only from literal text in the source, at class level (Folium's
    ``_template`` pattern); nothing renders a string made at run time."""
    found = []
    for path in [*ROOT.glob("gis_service/**/*.py"), *ROOT.glob("layers/**/*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        local = template_names(tree)
        class_level = {id(node.value) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef)
                       for node in cls.body if isinstance(node, ast.Assign)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in local:
                name = func.id
            elif isinstance(func, ast.Attribute) and func.attr in TEMPLATE_BUILDERS and (
                    ast.unparse(func.value).split(".")[0] in local | {"app", "current_app"}):
                name = func.attr
            else:
                continue
            literal = (len(node.args) == 1 and not node.keywords
                       and isinstance(node.args[0], ast.Constant)
                       and isinstance(node.args[0].value, str))
            if not (name == "Template" and literal and id(node) in class_level):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not found, found
    # The check sees the one template the code does build: the map's data-free loader.
    assert "Template" in template_names(ast.parse(
        (ROOT / "gis_service" / "map_builder.py").read_text(encoding="utf-8")))
