"""A store written before accounts had sessions and case-free names (schema 3 on SQLite,
1 on PostGIS) opens, upgrades in place, and its accounts log in as before."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import psycopg
from werkzeug.security import generate_password_hash

from gis_service import create_app
from layers.store import postgis, postgis_records, sqlite, sqlite_records
from tests import support
from tests.support import csrf_token

OLD_USERS = """CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
               role TEXT NOT NULL, created_at TEXT NOT NULL)"""
# Before names were unique without case, "lan" could be made beside the older "Lan".
ACCOUNTS = [("admin", "admin-pass-1", "admin", "2024-01-01T00:00:00+00:00"),
            ("Lan", "lan-pass-old-1", "inspector", "2024-02-01T00:00:00+00:00"),
            ("lan", "lan-pass-new-2", "planner", "2024-03-01T00:00:00+00:00")]


def rows() -> list[tuple[str, str, str, str]]:
    return [(name, generate_password_hash(pw, "pbkdf2:sha256:1000"), role, at)
            for name, pw, role, at in ACCOUNTS]


def old_store(tmp_path: Path) -> str:
    """A database as the previous release left it, holding the accounts above: today's
    map tables (other upgrade steps have tests of their own) beside the old users table."""
    target = support.test_database(tmp_path / "old.sqlite")
    if os.environ.get("GIS_TEST_STORE") == "postgis":
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(postgis.SCHEMA + postgis_records.RECORDS_SCHEMA)
            conn.execute("INSERT INTO gis_schema VALUES (1)")
            conn.execute(OLD_USERS)
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO users VALUES (%s, %s, %s, %s)", rows())
        return target
    with sqlite3.connect(target) as con:
        con.executescript(sqlite.SCHEMA + sqlite_records.RECORDS_SCHEMA)
        con.execute(OLD_USERS)
        con.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", rows())
        con.execute("PRAGMA user_version = 3")
    return target


def test_an_old_store_upgrades_and_its_accounts_still_log_in(tmp_path):
    database = old_store(tmp_path)
    app = create_app({"TESTING": True, "DATABASE": database, "SECRET_KEY": "k",
                      "RATELIMIT_DB": str(tmp_path / "rl.sqlite")})
    client = app.test_client()

    def log_in(username: str, password: str) -> int:
        return client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": csrf_token(client)}).status_code

    assert log_in("ADMIN", "admin-pass-1") == 302
    assert client.get("/map").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/map")})
    assert client.get("/map").status_code == 302
    # "lan" now names the older "Lan"; the later look-alike is kept, disabled, for the record.
    assert log_in("lan", "lan-pass-old-1") == 302
    client.post("/logout", data={"csrf_token": csrf_token(client, "/map")})
    assert log_in("lan", "lan-pass-new-2") == 401
    users = {u.username: u for u in app.extensions["gis_store"].list_users()}
    assert set(users) == {"admin", "Lan", "lan"}
    assert users["lan"].disabled and not users["Lan"].disabled
    # Opening it again is a no-op: the upgrade ran once.
    again = create_app({"TESTING": True, "DATABASE": database, "SECRET_KEY": "k"})
    assert len(again.extensions["gis_store"].list_users()) == 3
