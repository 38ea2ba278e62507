"""An inspector adds a hotspot by clicking the map and follows it, in headless Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from layers.query import FeatureQuery
from tests.browser_support import Server, log_in

pytestmark = pytest.mark.browser


def test_inspector_adds_a_hotspot_by_clicking_and_moves_it_on(page: Page, server: Server) -> None:
    log_in(page, server, "/map")
    page.click("text=+ Thêm điểm nóng")
    page.wait_for_selector("#hotspot-form .folium-map")
    page.wait_for_function("() => window.gisState && window.gisState.ready")
    box = page.locator("#hotspot-form .folium-map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    lat, lon = float(page.input_value("#lat")), float(page.input_value("#lon"))
    assert 11.46 < lat < 11.58 and 106.75 < lon < 106.94  # the map opened on the city
    page.fill("input[name=name]", "Đốt rác ven suối")
    page.select_option("select[name=category]", "air")
    page.select_option("select[name=severity]", "2")
    page.click("#hotspot-form button[type=submit]")
    page.wait_for_selector("#status-form")
    feature_id = int(page.url.rsplit("/", 1)[1])
    feature = server.store.get_feature("hotspots", feature_id)
    assert (round(feature.geometry.y, 6), round(feature.geometry.x, 6)) == (lat, lon)
    assert feature.properties["status"] == "reported"
    page.select_option("#status-form select[name=to]", "verified")
    page.fill("#status-form textarea[name=note]", "Đã ra hiện trường xác minh")
    page.click("#status-form button[type=submit]")
    page.wait_for_selector(".timeline-status")
    assert "Đã ra hiện trường xác minh" in page.inner_text("#timeline")
    assert server.store.get_feature("hotspots", feature_id).properties["status"] == "verified"
    matched = server.store.query_features("hotspots", FeatureQuery(
        equals={"name": ("Đốt rác ven suối",)})).matched
    assert matched == 1
