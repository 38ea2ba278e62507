"""Logins as an attacker and a user meet them: revocable sessions, time-outs, redirects,
lock-outs, timing, password strength and names that differ only by case."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient

from tests.support import PASSWORDS, csrf_token, login, make_app

STRONG = "mua-thu-dong-xoai-xanh"


def post_login(client: FlaskClient, username: str, password: str, address: str = "127.0.0.1",
               **extra: str):
    token = csrf_token(client)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token, **extra},
                       environ_base={"REMOTE_ADDR": address})


def logout(client: FlaskClient) -> None:
    client.post("/logout", data={"csrf_token": csrf_token(client, "/map")})


def change_password(client: FlaskClient, current: str, new: str, confirm: str | None = None):
    return client.post("/account/password", data={
        "current": current, "new": new, "confirm": new if confirm is None else confirm,
        "csrf_token": csrf_token(client, "/account/password")})


def logged_in(client: FlaskClient) -> bool:
    return client.get("/map").status_code == 200


def copy_of(app, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


# -- sessions end on the server ---------------------------------------------------------------
def test_a_cookie_copied_before_logout_opens_nothing_after_it(app, inspector):
    thief = copy_of(app, inspector)
    assert logged_in(thief) and thief.get("/api/layers").status_code == 200
    logout(inspector)
    assert thief.get("/map").status_code == 302
    api = thief.get("/api/layers")
    assert api.status_code == 401 and api.json["status"] == 401


def test_a_password_change_ends_every_other_session(app):
    phone, desk = login(app.test_client(), "planner"), login(app.test_client(), "planner")
    thief = copy_of(app, desk)
    changed = change_password(desk, PASSWORDS["planner"], STRONG)
    assert changed.status_code == 302, changed.get_data(as_text=True)
    assert logged_in(desk)  # the browser that changed it stays in, on a new session
    assert not logged_in(phone) and not logged_in(thief)
    assert post_login(app.test_client(), "planner", PASSWORDS["planner"]).status_code == 401
    assert post_login(app.test_client(), "planner", STRONG).status_code == 302


def test_disabling_an_account_ends_its_sessions_and_its_logins(app, inspector):
    admin = login(app.test_client(), "admin")
    response = admin.post("/admin/users/inspector/disable",
                          data={"csrf_token": csrf_token(admin, "/admin/users")})
    assert response.status_code == 302
    assert not logged_in(inspector)
    refused = post_login(app.test_client(), "inspector", PASSWORDS["inspector"])
    assert refused.status_code == 401 and "bị khoá" in refused.get_data(as_text=True)
    admin.post("/admin/users/inspector/enable",
               data={"csrf_token": csrf_token(admin, "/admin/users")})
    assert post_login(app.test_client(), "inspector", PASSWORDS["inspector"]).status_code == 302


def test_an_idle_session_times_out(tmp_path):
    app = make_app(tmp_path / "idle.sqlite", SESSION_IDLE_MINUTES=1.5 / 60)
    client = login(app.test_client())
    for _ in range(3):  # in use, it lives past the idle limit
        time.sleep(0.6)
        assert logged_in(client)
    time.sleep(2)
    assert not logged_in(client)


def test_a_session_ends_at_its_absolute_limit_however_busy(tmp_path):
    app = make_app(tmp_path / "max.sqlite", SESSION_MAX_HOURS=2 / 3600)
    client = login(app.test_client())
    assert logged_in(client)
    time.sleep(1)
    assert logged_in(client)
    time.sleep(1.3)
    assert not logged_in(client)


# -- where login sends you -----------------------------------------------------------------------
@pytest.mark.parametrize("target", [
    "/\t/evil.example/", "/\n/evil.example/", "//evil.example/", "/\\evil.example/",
    "\\\\evil.example", "https://evil.example/", "javascript:alert(1)", "/map\r\nSet-Cookie: x=1",
    "/map\rx", "/ /evil.example", "/\x0b/evil", "evil.example", "/" + "a" * 3000])
def test_login_never_leaves_the_site(app, target):
    client = app.test_client()
    assert client.get("/login", query_string={"next": target}).status_code == 200
    response = post_login(client, "planner", PASSWORDS["planner"], next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/map"


def test_login_follows_a_local_path_with_its_query(app):
    response = post_login(app.test_client(), "planner", PASSWORDS["planner"],
                          next="/map?ward=25195&status=verified")
    assert response.headers["Location"] == "/map?ward=25195&status=verified"


# -- guessing -----------------------------------------------------------------------------------
def test_a_stranger_guessing_cannot_lock_the_real_user_out(app):
    attacker = app.test_client()
    for _ in range(5):
        assert post_login(attacker, "planner", "guess-guess", "203.0.113.66").status_code == 401
    blocked = post_login(attacker, "planner", PASSWORDS["planner"], "203.0.113.66")
    assert blocked.status_code == 429  # the guesser's own address is slowed down
    real = post_login(app.test_client(), "planner", PASSWORDS["planner"], "198.51.100.7")
    assert real.status_code == 302


def test_one_address_guessing_many_names_is_limited(app):
    client = app.test_client()
    for n in range(10):
        assert post_login(client, f"user{n}", "guess-guess", "203.0.113.9").status_code == 401
    assert post_login(client, "inspector", PASSWORDS["inspector"], "203.0.113.9"
                      ).status_code == 429


def test_an_unknown_username_costs_as_much_time_as_a_known_one(app):
    made = app.test_cli_runner().invoke(args=["users", "create", "hoa", "--role", "inspector",
                                              "--password", STRONG])
    assert made.exit_code == 0, made.output  # hashed as every real account is (scrypt)
    client = app.test_client()

    def cost(username: str, n: int) -> float:
        start = time.perf_counter()
        response = post_login(client, username, "wrong-password", f"192.0.2.{n}")
        assert response.status_code == 401
        return time.perf_counter() - start

    known = min(cost("hoa", n) for n in range(1, 4))
    unknown = min(cost("khong-co-ai", n) for n in range(4, 7))
    assert unknown >= known / 2, (known, unknown)


# -- passwords and names ----------------------------------------------------------------------
@pytest.mark.parametrize("password, message", [
    ("12345678", "ít nhất 10 ký tự"), ("password", "ít nhất 10 ký tự"),
    ("1234567890", "mật khẩu phổ biến"), ("matkhau123", "mật khẩu phổ biến"),
    ("Password123", "mật khẩu phổ biến"), ("aaaaaaaaaaaa", "một ký tự lặp lại"),
    ("inspector-2024!", "chứa tên đăng nhập"), ("anhyeuem12", "quá dễ đoán"),
    ("x" * 129, "tối đa 128"), ("Nắng sớm trên sông Bé", "")])
def test_weak_passwords_are_refused_in_vietnamese(inspector, password, message):
    response = change_password(inspector, PASSWORDS["inspector"], password)
    if not message:  # long enough and varied: accepted
        assert response.status_code == 302, response.get_data(as_text=True)
        return
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert logged_in(inspector)  # nothing changed


def test_password_change_needs_the_current_password_and_a_matching_repeat(inspector):
    wrong = change_password(inspector, "not-my-password", STRONG)
    assert wrong.status_code == 400 and "Mật khẩu hiện tại không đúng" in wrong.get_data(
        as_text=True)
    differ = change_password(inspector, PASSWORDS["inspector"], STRONG, STRONG + "x")
    assert differ.status_code == 400 and "không khớp" in differ.get_data(as_text=True)


def test_usernames_are_one_account_whatever_their_case(app):
    admin = login(app.test_client(), "admin")
    token = csrf_token(admin, "/admin/users")
    dup = admin.post("/admin/users/new", data={"username": "ADMIN", "role": "admin",
                                               "csrf_token": token})
    assert dup.status_code == 409 and "không phân biệt chữ hoa" in dup.get_data(as_text=True)
    assert post_login(app.test_client(), "INSPECTOR", PASSWORDS["inspector"]).status_code == 302


@pytest.mark.parametrize("username", ["a" * 65, "lan\u202eadmin", "lan admin", "lan/x", " ",
                                      "<script>", "..", "_"])
def test_bad_usernames_are_refused_clearly(app, username):
    admin = login(app.test_client(), "admin")
    response = admin.post("/admin/users/new", data={
        "username": username, "role": "inspector",
        "csrf_token": csrf_token(admin, "/admin/users")})
    assert response.status_code == 400
    assert "Tên đăng nhập" in response.get_data(as_text=True)
    assert len(app.extensions["gis_store"].list_users()) == 3


def test_overlong_login_fields_get_a_400_not_a_500(client):
    assert post_login(client, "a" * 65, "x").status_code == 400
    assert post_login(client, "admin", "x" * 201).status_code == 400


@pytest.mark.parametrize("setting", [{"SESSION_IDLE_MINUTES": "abc"}, {"SESSION_MAX_HOURS": 0}])
def test_a_bad_time_out_setting_stops_the_start_with_its_name(tmp_path, setting):
    with pytest.raises(RuntimeError, match="GIS_SESSION_IDLE_MINUTES"):
        make_app(tmp_path / "bad.sqlite", **setting)
