"""Administrators browse, filter and export the audit log, and manage accounts."""

from __future__ import annotations

import csv
import io
import re

from shapely.geometry import Point

from tests.support import PASSWORDS, csrf_token, login


def add_hotspot(store, name, actor):
    return store.add_features("hotspots", [(Point(106.85, 11.52), {
        "name": name, "category": "air", "severity": 1, "status": "reported",
        "reported_at": "2024-01-01"})], actor=actor)[0]


def test_only_admins_see_the_audit_log(client):
    assert client.get("/admin/audit").status_code == 302
    login(client, "planner")
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/admin/audit.csv").status_code == 403


def test_audit_log_filters_and_csv(app, client):
    store = app.extensions["gis_store"]
    add_hotspot(store, "Khói nhà máy", "lan")
    add_hotspot(store, "=HYPERLINK(\"http://evil\")", "minh")
    login(client, "admin")
    page = client.get("/admin/audit?user=lan").get_data(as_text=True)
    assert "Khói nhà máy" not in page or "lan" in page
    assert "feature.create" in page and ">minh<" not in page
    assert client.get("/admin/audit?layer=wards").get_data(as_text=True).count(
        "feature.create") == 0
    assert client.get("/admin/audit?from=2999-01-01").get_data(as_text=True).count(
        "<tr>") == 1  # the header row only
    assert client.get("/admin/audit?from=01/01/2024").status_code == 400
    exported = client.get("/admin/audit.csv?layer=hotspots")
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:4] == ["id", "at", "user", "action"]
    users = {r[2] for r in rows[1:]}
    assert {"lan", "minh"} <= users
    assert all(not cell.startswith("=") for r in rows for cell in r)
    minh_row = next(r for r in rows if r[2] == "minh")
    assert "HYPERLINK" in minh_row[8] and minh_row[3] == "feature.create"


# -- account administration -----------------------------------------------------------------
def admin_post(client, path, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, "/admin/users"), **data})


def temporary_password(page: str) -> str:
    return re.search(r'id="temporary-password">.*?<code>([^<]+)</code>', page, re.S).group(1)


def test_admins_create_an_account_whose_temporary_password_must_be_changed(app):
    admin = login(app.test_client(), "admin")
    created = admin_post(admin, "/admin/users/new", username="Hoa", role="inspector")
    assert created.status_code == 201
    temporary = temporary_password(created.get_data(as_text=True))
    listing = admin.get("/admin/users")
    assert temporary not in listing.get_data(as_text=True)  # shown once only
    assert listing.headers["Cache-Control"] == "no-store"
    assert re.search(r"<td>Hoa</td>.*?Phải đổi mật khẩu.*?\d\d/\d\d/\d{4}",
                     listing.get_data(as_text=True), re.S)
    hoa = app.test_client()
    first = hoa.post("/login", data={"username": "hoa", "password": temporary,
                                     "csrf_token": csrf_token(hoa), "next": "/map?ward=1"})
    assert first.headers["Location"].startswith("/account/password")
    assert hoa.get("/map").headers["Location"].startswith("/account/password")
    api = hoa.get("/api/layers")
    assert api.status_code == 403 and api.is_json
    changed = hoa.post(first.headers["Location"], data={
        "current": temporary, "new": "mua-thu-dong-xoai-xanh",
        "confirm": "mua-thu-dong-xoai-xanh", "csrf_token": csrf_token(hoa, "/account/password")})
    assert changed.headers["Location"] == "/map?ward=1"
    assert hoa.get("/map").status_code == 200


def test_admins_change_roles_disable_and_reset_passwords_and_it_is_audited(app, inspector):
    admin = login(app.test_client(), "admin")
    assert inspector.get("/layers/").status_code == 403
    assert admin_post(admin, "/admin/users/inspector/role", role="planner").status_code == 302
    assert inspector.get("/layers/").status_code == 200  # the new role holds at once
    assert admin_post(admin, "/admin/users/inspector/role", role="boss").status_code == 400
    reset = admin_post(admin, "/admin/users/inspector/reset-password")
    assert reset.status_code == 200
    temporary = temporary_password(reset.get_data(as_text=True))
    assert inspector.get("/map").status_code == 302  # the reset ended its session
    again = app.test_client()
    assert again.post("/login", data={"username": "inspector", "password": PASSWORDS[
        "inspector"], "csrf_token": csrf_token(again)}).status_code == 401
    assert again.post("/login", data={"username": "inspector", "password": temporary,
                                      "csrf_token": csrf_token(again)}).status_code == 302
    audit = admin.get("/admin/audit?user=admin").get_data(as_text=True)
    assert "user.role" in audit and "user.password" in audit
    assert "scrypt" not in audit and "pbkdf2" not in audit  # never a hash
    entries = app.extensions["gis_store"].list_audit(actor="admin")[0]
    assert [e.action for e in entries][:2] == ["user.password", "user.role"]


def test_the_last_enabled_admin_cannot_be_disabled_or_demoted(app):
    admin = login(app.test_client(), "admin")
    demoted = admin_post(admin, "/admin/users/admin/role", role="planner")
    assert demoted.status_code == 400 and "quản trị viên" in demoted.get_data(as_text=True)
    assert admin_post(admin, "/admin/users/admin/disable").status_code == 400
    assert app.extensions["gis_store"].get_user("admin").role == "admin"
    missing = admin_post(admin, "/admin/users/nobody/disable")
    assert missing.status_code == 404 and "nobody" in missing.get_data(as_text=True)
