"""Planners configure the public maps the city website embeds (only public layers)."""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gis_service.public_maps import BOUND_NAMES, CONTROLS, bp
from layers.store import PublicMap, Store
from tests.support import csrf_token, login

INDEX = "/layers/public-maps/"
NEW = "/layers/public-maps/new"
EDIT = "/layers/public-maps/ban-do-moi-truong/edit"
PUBLIC = ["ranh-gioi-cong-khai", "diem-nong-cong-khai"]


@pytest.fixture
def app(app: Flask) -> Flask:
    """The app with the blueprint (until the factory registers it) and two public layers."""
    if "public_maps" not in app.blueprints:
        app.register_blueprint(bp)
    store = app.extensions["gis_store"]
    store.create_layer(PUBLIC[0], "Ranh giới phường", "ward", public=True)
    store.create_layer(PUBLIC[1], "Điểm nóng công khai", "hotspot", public=True)
    return app


@pytest.fixture
def store(app: Flask) -> Store:
    return app.extensions["gis_store"]


@pytest.fixture
def planner(client: FlaskClient) -> FlaskClient:
    """A planner whose pages are in English, so messages can be checked as written."""
    login(client, "planner").get(INDEX + "?lang=en")
    return client


def internal_layer(store: Store) -> str:
    return next(la.slug for la in store.list_layers() if not la.public)


def fields(client: FlaskClient, path: str = NEW, **changes: object) -> dict[str, object]:
    return {"csrf_token": csrf_token(client, path), "slug": "ban-do-moi-truong",
            "title": "Bản đồ môi trường", "layers": PUBLIC, "view": "bounds",
            "min_lon": "106.8", "min_lat": "11.5", "max_lon": "106.9", "max_lat": "11.56",
            "controls": ["fullscreen", "legend"], **changes}


def iframe_attrs(snippet: str) -> dict[str, str | None]:
    found: list[dict[str, str | None]] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append({"tag": tag, **dict(attrs)})

    Parser().feed(snippet)
    assert len(found) == 1 and found[0]["tag"] == "iframe"
    return found[0]


def test_anonymous_visitors_are_sent_to_log_in(client):
    for path in (INDEX, NEW):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_only_planners_and_admins_configure_public_maps(app, client, store):
    login(client, "inspector")
    assert client.get(INDEX).status_code == 403 and client.get(NEW).status_code == 403
    token = csrf_token(client, "/map")
    assert client.post(NEW, data={"csrf_token": token, "slug": "x", "title": "x",
                                  "layers": PUBLIC}).status_code == 403
    assert store.list_public_maps() == []
    assert login(app.test_client(), "admin").get(INDEX).status_code == 200


def test_the_form_offers_only_public_layers(planner, store):
    page = planner.get(NEW).get_data(as_text=True)
    assert all(f'name="layers" value="{slug}"' in page for slug in PUBLIC)
    assert f'value="{internal_layer(store)}"' not in page
    assert all(f'name="controls" value="{c}"' in page for c in CONTROLS)


def test_planner_creates_edits_and_gets_the_embed_snippet(planner, store):
    nfd_title = unicodedata.normalize("NFD", "Bản đồ môi trường")
    created = planner.post(NEW, data=fields(planner, title=nfd_title))
    assert created.status_code == 302 and created.headers["Location"].endswith(EDIT)
    assert store.get_public_map("ban-do-moi-truong") == PublicMap(
        "ban-do-moi-truong", "Bản đồ môi trường", tuple(PUBLIC), (106.8, 11.5, 106.9, 11.56),
        ("fullscreen", "legend"))

    listing = planner.get(INDEX).get_data(as_text=True)
    assert "Bản đồ môi trường" in listing and "Ranh giới phường" in listing
    assert "http://localhost/embed/ban-do-moi-truong" in listing and EDIT in listing

    form = planner.get(EDIT).get_data(as_text=True)
    assert 'value="106.8"' in form and 'name="slug"' not in form  # kept; slug fixed

    title = 'Bản đồ "xanh" <script>alert(1)</script>'
    edited = planner.post(EDIT, data=fields(planner, EDIT, title=title, view="fit",
                                            layers=PUBLIC[1:], controls=["report"]))
    assert edited.status_code == 302
    assert store.get_public_map("ban-do-moi-truong") == PublicMap(
        "ban-do-moi-truong", title, (PUBLIC[1],), None, ("report",))

    page = planner.get(EDIT).get_data(as_text=True)
    assert "<script>alert(1)" not in page
    match = re.search(r'<textarea id="embed-snippet"[^>]*>(.*?)</textarea>', page, re.S)
    assert match
    snippet = html.unescape(match.group(1))
    assert snippet == (
        '<iframe src="http://localhost/embed/ban-do-moi-truong" '
        'title="Bản đồ &#34;xanh&#34; &lt;script&gt;alert(1)&lt;/script&gt;" width="100%" '
        'height="480" style="border:0" loading="lazy" allowfullscreen></iframe>')
    assert iframe_attrs(snippet)["title"] == title  # a browser reads back the exact title


def test_a_decimal_comma_is_read_as_a_point(planner, store):
    data = fields(planner, min_lon="106,8", min_lat="11,5", max_lon="106,9", max_lat="11,56")
    assert planner.post(NEW, data=data).status_code == 302
    assert store.get_public_map("ban-do-moi-truong").bounds == (106.8, 11.5, 106.9, 11.56)


def test_an_internal_layer_is_refused_and_nothing_saved(planner, store):
    internal = internal_layer(store)
    response = planner.post(NEW, data=fields(planner, layers=[PUBLIC[0], internal]))
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "Only public layers" in page and internal in page
    assert 'value="Bản đồ môi trường"' in page and 'value="106.9"' in page  # what was typed
    assert store.list_public_maps() == []


@pytest.mark.parametrize("changes, message", [
    ({"layers": ["khong-co"]}, "not public or unknown: khong-co"),
    ({"layers": []}, "at least one layer"),
    ({"title": "  "}, "Enter a title"),
    ({"title": "x" * 201}, "longer than 200"),
    ({"controls": ["minimap"]}, "Unknown control"),
    ({"view": "world"}, "Choose how the map first opens"),
])
def test_other_bad_input_is_refused(planner, store, changes, message):
    response = planner.post(NEW, data=fields(planner, **changes))
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert store.list_public_maps() == []


@pytest.mark.parametrize("bounds, message", [
    (("106.9", "11.5", "106.8", "11.56"), "minimum is greater"),
    (("106.8", "11.5", "106.9", "abc"), "four numbers"),
    (("106.8", "11.5", "200", "11.56"), "in degrees"),
    (("565000", "1270000", "570000", "1275000"), "in degrees"),
    (("106.8", "", "106.9", "11.56"), "all four numbers"),
    (("106.8", "11.5", "106.9", "nan"), "finite"),
])
def test_bad_bounds_are_refused(planner, store, bounds, message):
    response = planner.post(NEW, data=fields(planner, **dict(zip(BOUND_NAMES, bounds,
                                                                  strict=True))))
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "initial view" in page and message in page
    assert store.list_public_maps() == []


@pytest.mark.parametrize("slug", ["", "Ban-Do", "-ban-do", "bản-đồ", "ban do", "a" * 64, "../x"])
def test_bad_slugs_are_refused(planner, store, slug):
    response = planner.post(NEW, data=fields(planner, slug=slug))
    assert response.status_code == 400 and "short name" in response.get_data(as_text=True)
    assert store.list_public_maps() == []


def test_a_form_without_csrf_token_is_refused(planner, store):
    data = fields(planner)
    del data["csrf_token"]
    response = planner.post(NEW, data=data)
    assert response.status_code == 400 and "form expired" in response.get_data(as_text=True)
    assert store.list_public_maps() == []


def test_an_existing_slug_is_not_overwritten(planner, store):
    assert planner.post(NEW, data=fields(planner)).status_code == 302
    again = planner.post(NEW, data=fields(planner, title="Bản đồ khác"))
    assert again.status_code == 409 and "already exists" in again.get_data(as_text=True)
    assert store.get_public_map("ban-do-moi-truong").title == "Bản đồ môi trường"


def test_unknown_maps_are_not_found_and_stale_layers_pointed_out(planner, store):
    assert planner.get("/layers/public-maps/khong-co/edit").status_code == 404
    internal = internal_layer(store)
    store.save_public_map(PublicMap("cu", "Bản đồ cũ", (PUBLIC[0], internal)))
    page = planner.get("/layers/public-maps/cu/edit").get_data(as_text=True)
    assert 'id="stale-layers"' in page and internal in page


@pytest.mark.parametrize("ancestors, outside", [
    ("'self'", None), ("'none'", None),
    ("'self' https://dongxoai.binhphuoc.gov.vn", "https://dongxoai.binhphuoc.gov.vn")])
def test_the_embed_panel_says_whether_the_city_website_may_show_the_map(
        app, planner, store, ancestors, outside):
    app.config["EMBED_FRAME_ANCESTORS"] = ancestors
    assert planner.post(NEW, data=fields(planner)).status_code == 302
    page = planner.get(EDIT).get_data(as_text=True)
    assert ('id="no-frame-sites"' in page) is (outside is None)
    if outside:
        assert f"<code>{outside}</code>" in page
    # The snippet comes with a copy button and a live preview of the embedded map.
    assert 'id="copy-snippet"' in page and "/static/js/copy_snippet.js" in page
    preview = re.search(r'<iframe id="embed-preview" src="([^"]+)"', page)
    assert preview and preview.group(1) == "http://localhost/embed/ban-do-moi-truong"
    assert planner.get("/embed/ban-do-moi-truong").status_code == 200
