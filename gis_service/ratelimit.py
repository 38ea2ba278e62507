"""Rate limits for login attempts and public forms, shared by all gunicorn workers.

Hits are a sliding-window log in a SQLite file of their own, so every worker on a host sees
the same counts. Refused hits are not recorded: hammering cannot stretch a lockout past one
window after the last allowed hit. Expired rows are pruned on every hit, so the table holds
at most ``limit.count`` rows per recently active key. Use one ``Limit`` per key.
"""

from __future__ import annotations

import ipaddress
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from flask import current_app, make_response, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from .http_errors import error_response

SCHEMA = ("CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL, expires REAL)",
          "CREATE INDEX IF NOT EXISTS hits_key ON hits (key, at)",
          "CREATE INDEX IF NOT EXISTS hits_expires ON hits (expires)")


@dataclass(frozen=True)
class Limit:
    """``count`` hits allowed per sliding window of ``seconds``."""

    count: int
    seconds: int


class RateLimiter:
    """Counts hits per key in the SQLite file ``path``; safe across threads and processes."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock  # wall time: workers must agree, so no per-process monotonic clock
        self._lock = threading.Lock()  # queue this process's threads instead of busy-waiting
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as con:
            for statement in SCHEMA:
                con.execute(statement)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection per call (thread- and fork-safe); IMMEDIATE locks out writers."""
        with self._lock, closing(sqlite3.connect(self.path, 30, isolation_level=None)) as con:
            con.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            con.execute("BEGIN IMMEDIATE")
            yield con  # an exception skips COMMIT; closing the connection rolls back
            con.execute("COMMIT")

    def _window(self, con: sqlite3.Connection, key: str, limit: Limit) -> list[float]:
        rows = con.execute("SELECT at FROM hits WHERE key = ? AND at > ? ORDER BY at",
                           (key, self.clock() - limit.seconds)).fetchall()
        return [at for (at,) in rows]

    def hit(self, key: str, limit: Limit) -> bool:
        """Record a hit and return True, or return False (recording nothing) if over limit."""
        with self._tx() as con:
            now = self.clock()
            con.execute("DELETE FROM hits WHERE expires <= ?", (now,))
            if len(self._window(con, key, limit)) >= limit.count:
                return False
            con.execute("INSERT INTO hits VALUES (?, ?, ?)", (key, now, now + limit.seconds))
            return True

    def remaining(self, key: str, limit: Limit) -> int:
        """Hits still allowed now for ``key``."""
        with self._tx() as con:
            return max(0, limit.count - len(self._window(con, key, limit)))

    def retry_after(self, key: str, limit: Limit) -> int:
        """Whole seconds until ``hit`` would succeed again (0 if it would now)."""
        with self._tx() as con:
            window = self._window(con, key, limit)
        if len(window) < limit.count:
            return 0
        freed_at = window[len(window) - limit.count] + limit.seconds
        return max(1, math.ceil(freed_at - self.clock()))

    def reset(self, key: str) -> None:
        """Forget ``key``'s hits, e.g. the username's failures after a successful login."""
        with self._tx() as con:
            con.execute("DELETE FROM hits WHERE key = ?", (key,))


def limiter() -> RateLimiter:
    """The app's limiter on the ``RATELIMIT_DB`` file."""
    if "gis_ratelimit" not in current_app.extensions:
        path = current_app.config["RATELIMIT_DB"]
        current_app.extensions.setdefault("gis_ratelimit", RateLimiter(path))
    return current_app.extensions["gis_ratelimit"]


def client_key(scope: str) -> str:
    """``scope`` plus the client address; IPv6 counts per /64, which one host usually owns."""
    addr = request.remote_addr or "unknown"
    with suppress(ValueError):  # IPv4 stays as it is; an unparsable address is kept verbatim
        addr = str(ipaddress.ip_network(f"{addr}/64", strict=False)) if ":" in addr else addr
    return f"{scope}:ip:{addr}"


def too_many(retry_after: int) -> ResponseReturnValue:
    """A 429 page (JSON under /api/) with Retry-After, so clients know when to come back."""
    minutes = math.ceil(max(retry_after, 1) / 60)
    message = _("Too many attempts. Try again in %(minutes)d minute(s).", minutes=minutes)
    response = make_response(error_response(429, message))
    response.headers["Retry-After"] = str(retry_after)
    return response
