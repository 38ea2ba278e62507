"""The map as people use it, in headless Chromium: on a desktop and on a phone, the view kept
in a link, a metric scale, a legend and popups that leave the map usable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from layers.kinds import get_kind
from tests.browser_support import Server, log_in, open_popup_at, settle

pytestmark = pytest.mark.browser

MAP = "window[document.querySelector('.folium-map').id]"
CONTROLS = (".leaflet-control-zoom", ".leaflet-control-layers", ".gis-legend",
            ".gis-copy-link", ".leaflet-control-scale")


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A 390 × 844 touch screen, as an inspector's phone in the field."""
    context = browser.new_context(locale="vi-VN", viewport={"width": 390, "height": 844},
                                  is_mobile=True, has_touch=True)
    yield context.new_page()
    context.close()


def boxes(page: Page, selector: str) -> list[dict[str, float]]:
    return [b for b in (node.bounding_box() for node in page.locator(selector).all()) if b]


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def test_the_view_is_kept_in_a_link_that_can_be_copied(browser: Browser,
                                                       server: Server) -> None:
    context = browser.new_context(locale="vi-VN", viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    log_in(page, server, "/map?status=resolved")
    settle(page)
    page.evaluate(f"() => {MAP}.setView([11.53, 106.86], 16, {{animate: false}})")
    page.wait_for_url("**/map?status=resolved#map=16/11.53000/106.86000")
    page.click(".gis-copy-link a")
    page.wait_for_selector(".gis-copy-note:has-text('Đã sao chép')")
    link = page.evaluate("() => navigator.clipboard.readText()")
    assert link == page.url
    other = context.new_page()
    other.goto(link)
    settle(other)
    view = other.evaluate(f"() => [{MAP}.getZoom(), {MAP}.getCenter().lat, {MAP}.getCenter().lng]")
    assert view[0] == 16 and abs(view[1] - 11.53) < 1e-4 and abs(view[2] - 106.86) < 1e-4
    assert other.locator("select[name=status]").input_value() == "resolved"
    context.close()


def test_scale_bar_is_metric_only(page: Page, server: Server) -> None:
    log_in(page, server)
    settle(page)
    lines = page.locator(".leaflet-control-scale-line").all_inner_texts()
    assert len(lines) == 1 and lines[0].strip().endswith(("m", "km")), lines


def test_desktop_legend_leaves_most_of_the_map_free(page: Page, server: Server) -> None:
    log_in(page, server)
    settle(page)
    legend = page.locator(".gis-legend").bounding_box()
    frame = page.locator(".folium-map").bounding_box()
    assert legend and frame
    assert page.locator(".gis-legend details").get_attribute("open") is not None
    assert legend["width"] * legend["height"] < 0.15 * frame["width"] * frame["height"]


def test_clusters_wear_their_layers_colour(page: Page, server: Server) -> None:
    log_in(page, server)
    settle(page)
    layer = server.store.get_layer("hotspots")
    color = layer.style.get("color", get_kind(layer.kind).color)
    inner = page.locator(".gis-cluster-hotspots div").first
    shown = inner.evaluate("(n) => getComputedStyle(n).backgroundColor")
    expected = page.evaluate("""(c) => { const d = document.createElement('div');
        d.style.background = c; document.body.appendChild(d);
        const v = getComputedStyle(d).backgroundColor; d.remove(); return v; }""",
                             color)
    assert shown == expected


def test_phone_legend_is_folded_and_popups_clear_the_controls(phone: Page,
                                                              server: Server) -> None:
    log_in(phone, server)
    settle(phone)
    assert phone.locator(".gis-legend details").get_attribute("open") is None
    frame = phone.locator(".folium-map").bounding_box()
    assert frame
    spot = server.first("hotspots").geometry
    open_popup_at(phone, spot.y, spot.x)
    phone.wait_for_selector(".leaflet-popup .gis-popup table")
    # Autopan runs once the whole feature has arrived.
    phone.wait_for_function(f"() => !{MAP}._panAnim || !{MAP}._panAnim._inProgress")
    phone.wait_for_timeout(400)
    popup = phone.locator(".leaflet-popup-content-wrapper").bounding_box()
    assert popup
    assert popup["x"] >= frame["x"] and popup["x"] + popup["width"] <= frame["x"] + frame["width"]
    for selector in CONTROLS:
        for control in boxes(phone, selector):
            assert not overlap(popup, control), (selector, popup, control)
