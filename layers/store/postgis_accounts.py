"""The PostGIS store's accounts and login sessions: the PostgreSQL twin of
``sqlite_accounts.py``, with the same checks and keys from ``common.py``."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from .base import SessionPolicy, User
from .common import (
    changed_user,
    checked_user,
    legacy_user_keys,
    new_session_token,
    session_alive,
    session_cutoffs,
    session_digest,
    session_stale,
    user_exists,
    user_key,
    user_not_found,
    utc_now,
)

Row = dict[str, Any]
Conn = psycopg.Connection[Row]

ACCOUNTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT COLLATE "C" PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    name_key TEXT COLLATE "C" NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT false,
    must_change_password BOOLEAN NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX IF NOT EXISTS users_name_key ON users(name_key);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    username TEXT COLLATE "C" NOT NULL REFERENCES users(username),
    created DOUBLE PRECISION NOT NULL,
    seen DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(username);
CREATE INDEX IF NOT EXISTS sessions_seen ON sessions(seen);
"""


def upgrade_accounts(conn: Conn) -> None:
    """Schema 4: the columns ``users`` gained; runs in the migration's transaction."""
    conn.execute("ALTER TABLE users ADD COLUMN IF NOT EXISTS name_key TEXT COLLATE \"C\";"
                 " ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled BOOLEAN NOT NULL"
                 " DEFAULT false; ALTER TABLE users ADD COLUMN IF NOT EXISTS"
                 " must_change_password BOOLEAN NOT NULL DEFAULT false")
    names = [r["username"] for r in conn.execute("SELECT username FROM users"
                                                 " ORDER BY created_at, username")]
    with conn.cursor() as cur:
        cur.executemany("UPDATE users SET name_key = %s, disabled = disabled OR %s"
                        " WHERE username = %s",
                        [(key, off, name) for name, key, off in legacy_user_keys(names)])


def _to_user(row: Row) -> User:
    return User(row["username"], row["password_hash"], row["role"], row["created_at"],
                row["disabled"], row["must_change_password"])


class PostGISAccountsMixin:
    """Accounts and sessions for ``PostGISStore``."""

    _tx: Callable[[], AbstractContextManager[Conn]]
    _con: Callable[[], AbstractContextManager[Conn]]
    _audit: Callable[..., None]

    def create_user(self, username: str, password_hash: str, role: str, *,
                    must_change_password: bool = False, actor: str = "system") -> User:
        username = checked_user(username, role)
        now = utc_now()
        with self._tx() as conn:
            added = conn.execute(
                "INSERT INTO users (username, password_hash, role, created_at, name_key,"
                " must_change_password) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING username",
                (username, password_hash, role, now, user_key(username), must_change_password),
            ).fetchone()
            if added is None:
                raise user_exists(username)
            self._audit(conn, actor, "user.create", after={"username": username,
                                                           "role": role}, at=now)
        return User(username, password_hash, role, now, False, must_change_password)

    @staticmethod
    def _user_row(conn: Conn, username: str, lock: bool = False) -> Row:
        sql = ("SELECT * FROM users WHERE name_key = %s FOR UPDATE" if lock
               else "SELECT * FROM users WHERE name_key = %s")
        row = conn.execute(sql, (user_key(username),)).fetchone()
        if row is None:
            raise user_not_found(username)
        return row

    def get_user(self, username: str) -> User | None:
        with self._con() as conn:
            row = conn.execute("SELECT * FROM users WHERE name_key = %s",
                               (user_key(username),)).fetchone()
        return None if row is None else _to_user(row)

    def list_users(self) -> list[User]:
        with self._con() as conn:
            rows = conn.execute("SELECT * FROM users ORDER BY name_key").fetchall()
        return [_to_user(r) for r in rows]

    def update_user(self, username: str, *, role: str | None = None,
                    disabled: bool | None = None, actor: str = "system") -> User:
        with self._tx() as conn:
            # Every admin row is locked, so two updates cannot each leave the other last.
            conn.execute("SELECT 1 FROM users WHERE role = 'admin' FOR UPDATE")
            before = _to_user(self._user_row(conn, username, lock=True))
            others = conn.execute("SELECT count(*) AS n FROM users WHERE role = 'admin' AND NOT"
                                  " disabled AND username != %s", (before.username,)
                                  ).fetchone()["n"]
            after, entries = changed_user(before, role, disabled, others)
            conn.execute("UPDATE users SET role = %s, disabled = %s WHERE username = %s",
                         (after.role, after.disabled, after.username))
            if after.disabled:
                conn.execute("DELETE FROM sessions WHERE username = %s", (after.username,))
            for action, old, new in entries:
                self._audit(conn, actor, action, before=old, after=new)
        return after

    def set_password(self, username: str, password_hash: str, *, must_change: bool,
                     actor: str = "system") -> None:
        with self._tx() as conn:
            name = self._user_row(conn, username, lock=True)["username"]
            conn.execute("UPDATE users SET password_hash = %s, must_change_password = %s"
                         " WHERE username = %s", (password_hash, must_change, name))
            conn.execute("DELETE FROM sessions WHERE username = %s", (name,))
            self._audit(conn, actor, "user.password",
                        after={"username": name, "must_change": must_change})

    def open_session(self, username: str, policy: SessionPolicy) -> str:
        token, digest = new_session_token()
        now = time.time()
        with self._tx() as conn:
            name = self._user_row(conn, username)["username"]
            conn.execute("DELETE FROM sessions WHERE seen <= %s OR created <= %s",
                         session_cutoffs(policy, now))
            conn.execute("INSERT INTO sessions (id, username, created, seen)"
                         " VALUES (%s, %s, %s, %s)", (digest, name, now, now))
        return token

    def session_user(self, token: str, policy: SessionPolicy) -> User | None:
        digest = session_digest(token)
        with self._con() as conn:
            row = conn.execute("SELECT s.created, s.seen, u.* FROM sessions s JOIN users u"
                               " ON u.username = s.username WHERE s.id = %s", (digest,)
                               ).fetchone()
            if row is None:
                return None
            now = time.time()
            if not session_alive(row["created"], row["seen"], policy, now) or row["disabled"]:
                conn.execute("DELETE FROM sessions WHERE id = %s", (digest,))
                return None
            if session_stale(row["seen"], policy, now):
                conn.execute("UPDATE sessions SET seen = %s WHERE id = %s", (now, digest))
        return _to_user(row)

    def close_session(self, token: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM sessions WHERE id = %s", (session_digest(token),))
