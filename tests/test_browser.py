"""The inspector map in a real headless Chromium: login, layers drawn, filters, popups, language.

The expected numbers come from the same store the live server reads, never from constants.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page

from tests.browser_support import Server, log_in, open_popup_at, serve, settle, shown_points

pytestmark = pytest.mark.browser


def test_map_shows_every_feature_and_stays_on_site(page: Page, server: Server) -> None:
    requests: list[str] = []
    page_errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    log_in(page, server)
    settle(page)
    assert server.store.count_features("wards") > 0
    assert page.locator("path.gis-ward").count() == server.store.count_features("wards")
    for slug in ("hotspots", "collection-points"):
        assert shown_points(page, slug) == server.matched(slug), slug
    hosts = {urlsplit(u).hostname for u in requests if not u.startswith("data:")}
    assert hosts <= {"127.0.0.1", server.tile_host}, requests
    assert not page_errors


def test_anonymous_visit_ends_on_the_login_page(page: Page, server: Server) -> None:
    api_calls: list[str] = []
    page.on("request", lambda r: api_calls.append(r.url) if "/api/" in r.url else None)
    page.goto(server.url + "/map?status=resolved")
    assert urlsplit(page.url).path == "/login"
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/map?status=resolved"]
    assert page.locator("#password").is_visible()
    assert page.locator(".folium-map, .gis-marker, path.gis-ward").count() == 0
    assert not api_calls


def test_status_link_shows_matching_hotspots(page: Page, server: Server) -> None:
    log_in(page, server, "/map?status=resolved")
    assert parse_qs(urlsplit(page.url).query) == {"status": ["resolved"]}
    settle(page)
    expected = server.matched("hotspots", {"status": ["resolved"]})
    assert 0 < expected < server.matched("hotspots")
    assert shown_points(page, "hotspots") == expected
    assert page.locator("select[name=status]").input_value() == "resolved"
    assert page.locator("details.filters summary").inner_text().endswith("(1)")


def test_filter_form_makes_a_shareable_link(page: Page, server: Server) -> None:
    sample = server.first("hotspots").properties
    ward, category = str(sample["ward"]), str(sample["category"])
    log_in(page, server)
    settle(page)
    page.click("details.filters summary")
    page.select_option("select[name=ward]", ward)
    page.select_option("select[name=category]", category)
    page.click("#filters button[type=submit]")
    page.wait_for_url(lambda url: "ward=" in url, wait_until="domcontentloaded")
    query = parse_qs(urlsplit(page.url).query)
    assert (query["ward"], query["category"]) == ([ward], [category])
    settle(page)
    expected = server.matched("hotspots", {"ward": [ward], "category": [category]})
    assert 0 < expected < server.matched("hotspots", {"ward": [ward]})
    assert shown_points(page, "hotspots") == expected
    assert shown_points(page, "collection-points") == server.matched(
        "collection-points", {"ward": [ward]}
    )
    assert page.locator("select[name=ward]").input_value() == ward
    assert page.locator("select[name=category]").input_value() == category
    assert page.locator("select[name=status]").input_value() == ""


def test_hotspot_popup_in_vietnamese(page: Page, server: Server) -> None:
    feature = server.first("hotspots")
    props = feature.properties
    log_in(page, server)
    settle(page)
    popup = open_popup_at(page, feature.geometry.y, feature.geometry.x)
    assert popup.locator("h3").text_content() == props["name"]
    rows = dict(page.evaluate(
        """() => [...document.querySelectorAll('.leaflet-popup .gis-popup tr')]
            .map((r) => [r.cells[0].textContent, r.cells[1].textContent])"""
    ))
    fields = {f.name: f for f in server.store.get_layer("hotspots").fields}
    status = fields["status"].choice(props["status"])
    category = fields["category"].choice(props["category"])
    assert status and category
    assert (rows["Trạng thái"], rows["Loại ô nhiễm"]) == (status.vi, category.vi)
    assert rows["Phường/xã"] == server.ward_name(str(props["ward"]))


UI_TEXT = {  # page language, two catalogue strings, a label from the layer's vocabulary
    "vi": {"lang": "vi", "logout": "Đăng xuất", "legend": "Chú giải", "resolved": "Đã xử lý"},
    "en": {"lang": "en", "logout": "Log out", "legend": "Legend", "resolved": "Resolved"},
}


@pytest.mark.parametrize(
    ("page", "path", "lang"),
    [("vi-VN", "/map", "vi"), ("vi-VN", "/map?lang=en", "en"), ("en-US", "/map", "en")],
    indirect=["page"],
)
def test_vietnamese_by_default_english_on_request(
    page: Page, server: Server, path: str, lang: str
) -> None:
    log_in(page, server, path)
    settle(page)
    status = page.locator("select[name=status] option[value=resolved]")  # in the closed panel
    assert {
        "lang": page.locator("html").get_attribute("lang"),
        "logout": page.locator("header form button").inner_text().strip(),
        "legend": page.locator(".gis-legend summary").inner_text().strip(),
        "resolved": status.text_content(),
    } == UI_TEXT[lang]


def test_map_draws_without_basemap_tiles(page: Page, server: Server) -> None:
    failed: list[str] = []
    page.route(f"*://{server.tile_host}/**", lambda route: route.abort())
    page.on("requestfailed", lambda r: failed.append(r.url) if server.tile_host in r.url else None)
    log_in(page, server)
    settle(page)
    assert failed, "the map asked for no basemap tile"
    assert page.locator(".leaflet-tile-loaded").count() == 0
    assert page.locator("path.gis-ward").count() == server.store.count_features("wards")
    assert shown_points(page, "hotspots") == server.matched("hotspots")


def test_map_works_with_no_basemap_configured(page: Page, tmp_path) -> None:
    """GIS_TILE_URL="" means no basemap at all: the map must still draw everything."""
    with serve(tmp_path, TILE_URL="") as bare:
        log_in(page, bare)
        settle(page)
        assert page.locator(".leaflet-tile").count() == 0
        assert page.locator("path.gis-ward").count() == bare.store.count_features("wards")
        assert shown_points(page, "hotspots") == bare.matched("hotspots")
