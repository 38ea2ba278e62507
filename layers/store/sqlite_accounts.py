"""The SQLite store's accounts and login sessions.

Kept apart from ``sqlite.py`` like the records; ``SQLiteStore`` mixes this in. Names are
unique by ``name_key`` (the NFC name without case, computed in Python because SQLite's
``lower`` only knows ASCII). A session row holds the digest of the browser's token.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

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

ACCOUNTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    name_key TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    must_change_password INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS users_name_key ON users(name_key);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username),
    created REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(username);
CREATE INDEX IF NOT EXISTS sessions_seen ON sessions(seen);
"""


def upgrade_accounts(con: sqlite3.Connection) -> None:
    """Schema 4: the columns ``users`` gained (case-free name key, disabled, must change).

    Idempotent and in one transaction, so an interrupted upgrade is simply run again.
    """
    con.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in con.execute("PRAGMA table_info(users)")}
        for name, decl in (("name_key", "TEXT"), ("disabled", "INTEGER NOT NULL DEFAULT 0"),
                           ("must_change_password", "INTEGER NOT NULL DEFAULT 0")):
            if name not in columns:
                con.execute(f"ALTER TABLE users ADD COLUMN {name} {decl}")
        names = [r[0] for r in con.execute("SELECT username FROM users ORDER BY created_at,"
                                           " rowid")]
        con.executemany("UPDATE users SET name_key = ?, disabled = disabled OR ?"
                        " WHERE username = ?",
                        [(key, off, name) for name, key, off in legacy_user_keys(names)])
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _to_user(row: sqlite3.Row) -> User:
    return User(row["username"], row["password_hash"], row["role"], row["created_at"],
                bool(row["disabled"]), bool(row["must_change_password"]))


class AccountsMixin:
    """Accounts and sessions for ``SQLiteStore``."""

    _con: Callable[[], sqlite3.Connection]
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _audit: Callable[..., None]

    def create_user(self, username: str, password_hash: str, role: str, *,
                    must_change_password: bool = False, actor: str = "system") -> User:
        username = checked_user(username, role)
        now = utc_now()
        try:
            with self._tx() as con:
                con.execute(
                    "INSERT INTO users (username, password_hash, role, created_at, name_key,"
                    " must_change_password) VALUES (?, ?, ?, ?, ?, ?)",
                    (username, password_hash, role, now, user_key(username),
                     int(must_change_password)))
                self._audit(con, actor, "user.create", after={"username": username,
                                                              "role": role}, at=now)
        except sqlite3.IntegrityError:
            raise user_exists(username) from None
        return User(username, password_hash, role, now, False, must_change_password)

    def _user_row(self, con: sqlite3.Connection, username: str) -> sqlite3.Row | None:
        return con.execute("SELECT * FROM users WHERE name_key = ?",
                           (user_key(username),)).fetchone()

    def get_user(self, username: str) -> User | None:
        row = self._user_row(self._con(), username)
        return None if row is None else _to_user(row)

    def list_users(self) -> list[User]:
        rows = self._con().execute("SELECT * FROM users ORDER BY name_key")
        return [_to_user(r) for r in rows]

    def update_user(self, username: str, *, role: str | None = None,
                    disabled: bool | None = None, actor: str = "system") -> User:
        with self._tx() as con:
            row = self._user_row(con, username)
            if row is None:
                raise user_not_found(username)
            before = _to_user(row)
            others = con.execute("SELECT count(*) FROM users WHERE role = 'admin' AND NOT"
                                 " disabled AND username != ?", (before.username,)).fetchone()[0]
            after, entries = changed_user(before, role, disabled, others)
            con.execute("UPDATE users SET role = ?, disabled = ? WHERE username = ?",
                        (after.role, int(after.disabled), after.username))
            if after.disabled:
                con.execute("DELETE FROM sessions WHERE username = ?", (after.username,))
            for action, old, new in entries:
                self._audit(con, actor, action, before=old, after=new)
        return after

    def set_password(self, username: str, password_hash: str, *, must_change: bool,
                     actor: str = "system") -> None:
        with self._tx() as con:
            row = self._user_row(con, username)
            if row is None:
                raise user_not_found(username)
            con.execute("UPDATE users SET password_hash = ?, must_change_password = ?"
                        " WHERE username = ?", (password_hash, int(must_change),
                                                row["username"]))
            con.execute("DELETE FROM sessions WHERE username = ?", (row["username"],))
            self._audit(con, actor, "user.password",
                        after={"username": row["username"], "must_change": must_change})

    def open_session(self, username: str, policy: SessionPolicy) -> str:
        token, digest = new_session_token()
        now = time.time()
        with self._tx() as con:
            row = self._user_row(con, username)
            if row is None:
                raise user_not_found(username)
            con.execute("DELETE FROM sessions WHERE seen <= ? OR created <= ?",
                        session_cutoffs(policy, now))
            con.execute("INSERT INTO sessions (id, username, created, seen) VALUES (?, ?, ?, ?)",
                        (digest, row["username"], now, now))
        return token

    def session_user(self, token: str, policy: SessionPolicy) -> User | None:
        digest = session_digest(token)
        row = self._con().execute(
            "SELECT s.created, s.seen, u.* FROM sessions s JOIN users u"
            " ON u.username = s.username WHERE s.id = ?", (digest,)).fetchone()
        if row is None:
            return None
        now = time.time()
        if not session_alive(row["created"], row["seen"], policy, now) or row["disabled"]:
            self.close_session(token)
            return None
        if session_stale(row["seen"], policy, now):
            with self._tx() as con:
                con.execute("UPDATE sessions SET seen = ? WHERE id = ?", (now, digest))
        return _to_user(row)

    def close_session(self, token: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM sessions WHERE id = ?", (session_digest(token),))
