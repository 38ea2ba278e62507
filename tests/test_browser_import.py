"""A planner imports agency files through the real upload page in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from playwright.sync_api import Page

from layers.query import FeatureQuery
from tests.browser_support import Server, log_in, settle
from tests.ingest_files import TRAP_PRJ, tm3, write_shapefile, zip_files
from tests.test_ingest import NAMES, hotspot_frame

pytestmark = pytest.mark.browser

PAYLOAD = '<img src=x onerror="window.__xss=1">'


def upload(page: Page, server: Server, path: Path) -> None:
    log_in(page, server, "/layers/", role="planner")
    page.set_input_files("input[type=file]", str(path))
    page.click("form[enctype] button[type=submit]")
    page.wait_for_selector("#rows")


def test_planner_imports_a_legacy_vn2000_shapefile(page: Page, server: Server,
                                                    tmp_path: Path) -> None:
    files = write_shapefile(tmp_path / "src", "diem_nong", hotspot_frame(), encoding="tcvn3",
                            prj=TRAP_PRJ)
    upload(page, server, zip_files(tmp_path / "diem_nong.zip", files))
    assert "TCVN3" in page.inner_text("#encoding")
    assert "EPSG:9212" in page.inner_text("#crs")
    assert "226 m" in page.inner_text("#warnings") or "m at" in page.inner_text("#warnings")
    assert page.locator("#rows tbody tr").first.inner_text().startswith(NAMES[0])
    page.select_option("form.inline-form select[name=kind]", "hotspot")
    page.click("form.inline-form button[type=submit]")
    page.wait_for_selector("input[name=confirm]")
    assert page.locator("select[name=map_ward]").input_value() == "phuong"
    page.fill("input[name=title]", "Điểm nóng từ Sở")
    page.fill("input[name=slug]", "diem-nong-so")
    page.click("#publish button[type=submit]")
    assert "xác nhận" in page.inner_text(".flash.error") or "confirm" in page.inner_text(
        ".flash.error")
    page.check("input[name=confirm]")
    page.click("#publish button[type=submit]")
    page.wait_for_url("**/layers/diem-nong-so/versions")
    features = server.store.query_features("diem-nong-so", FeatureQuery()).features
    assert [f.properties["name"] for f in features] == NAMES
    assert features[1].properties["ward"] == "25213"  # "Xã Tiến Hưng" became its code
    page.goto(server.url + "/map")
    settle(page)
    assert page.evaluate("() => window.gisState.layers['diem-nong-so'].count") == 4


def test_hostile_values_in_an_upload_stay_text(page: Page, server: Server,
                                               tmp_path: Path) -> None:
    (x1, y1), (x2, y2) = tm3(106.85, 11.52), tm3(106.86, 11.53)
    frame = gpd.GeoDataFrame(
        {PAYLOAD[:10]: [PAYLOAD, "</script><script>window.__xss=2</script>"],
         "ghi_chu": ["`${window.__xss=3}`", "'\"><svg onload=window.__xss=4>"]},
        geometry=gpd.points_from_xy([x1, x2], [y1, y2]), crs=9212)
    files = write_shapefile(tmp_path / "src", "doc_hai", frame)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    upload(page, server, zip_files(tmp_path / "doc_hai.zip", files))
    assert PAYLOAD in page.inner_text("#rows")
    settle(page)
    page.click("#publish button[type=submit]")
    page.wait_for_url("**/versions")
    page.goto(server.url + "/map")
    settle(page)
    marker = page.locator(".gis-marker-doc-hai").first
    if marker.count() == 0:  # clustered: zoom to street level first
        page.evaluate("""() => window[document.querySelector('.folium-map').id]
            .setView([11.52, 106.85], 18, {animate: false})""")
        settle(page)
    page.locator(".gis-marker-doc-hai").first.click()
    popup = page.locator(".leaflet-popup-content")
    assert PAYLOAD in popup.inner_text() or "</script>" in popup.inner_text()
    assert page.evaluate("() => window.__xss") is None
    assert not dialogs
