"""The rate limiter: sliding windows, shared counts across workers, pruning, the 429 reply."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest
from flask import Flask

from gis_service.ratelimit import Limit, RateLimiter, client_key, limiter, too_many

LIMIT = Limit(count=3, seconds=60)


class FakeClock:
    """A settable clock, so windows expire without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "instance" / "ratelimit.sqlite"


@pytest.fixture
def rl(db: Path, clock: FakeClock) -> RateLimiter:
    return RateLimiter(db, clock=clock)


def rows(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM hits").fetchone()[0]


def test_allows_count_hits_then_refuses(rl: RateLimiter) -> None:
    assert rl.remaining("k", LIMIT) == 3
    assert [rl.hit("k", LIMIT) for _ in range(3)] == [True, True, True]
    assert rl.remaining("k", LIMIT) == 0
    assert rl.hit("k", LIMIT) is False


def test_window_slides(rl: RateLimiter, clock: FakeClock) -> None:
    for _ in range(3):
        rl.hit("k", LIMIT)
        clock.advance(10)  # hits at 0, 10, 20
    clock.advance(29.5)  # now 59.5: the first hit is still inside the window
    assert rl.hit("k", LIMIT) is False
    clock.advance(0.5)  # now 60: the first hit has left
    assert rl.remaining("k", LIMIT) == 1
    assert rl.hit("k", LIMIT) is True
    assert rl.hit("k", LIMIT) is False


def test_retry_after(rl: RateLimiter, clock: FakeClock) -> None:
    assert rl.retry_after("k", LIMIT) == 0
    for _ in range(3):
        rl.hit("k", LIMIT)
        clock.advance(10)
    assert rl.retry_after("k", LIMIT) == 30  # first hit at 0 leaves at 60; now is 30
    clock.advance(0.5)
    assert rl.retry_after("k", LIMIT) == 30  # rounded up: never tells a client to come early
    clock.advance(29.5)
    assert rl.retry_after("k", LIMIT) == 0
    assert rl.hit("k", LIMIT) is True


def test_refused_hits_do_not_extend_the_lockout(rl: RateLimiter, clock: FakeClock) -> None:
    for _ in range(3):
        rl.hit("k", LIMIT)
    for _ in range(50):
        clock.advance(1)
        assert rl.hit("k", LIMIT) is False
    clock.advance(10)  # 60 s after the allowed hits, however much was refused since
    assert rl.hit("k", LIMIT) is True


def test_keys_are_independent(rl: RateLimiter) -> None:
    for _ in range(3):
        rl.hit("login:user:alice", LIMIT)
    assert rl.hit("login:user:alice", LIMIT) is False
    assert rl.hit("login:user:bob", LIMIT) is True
    assert rl.remaining("login:user:bob", LIMIT) == 2


def test_reset_clears_only_that_key(rl: RateLimiter) -> None:
    for _ in range(3):
        rl.hit("a", LIMIT)
        rl.hit("b", LIMIT)
    rl.reset("a")
    assert rl.remaining("a", LIMIT) == 3
    assert rl.hit("a", LIMIT) is True
    assert rl.hit("b", LIMIT) is False


def test_two_instances_on_one_file_share_counts(db: Path, clock: FakeClock) -> None:
    worker1, worker2 = RateLimiter(db, clock=clock), RateLimiter(db, clock=clock)
    assert worker1.hit("k", LIMIT) and worker2.hit("k", LIMIT) and worker1.hit("k", LIMIT)
    assert worker2.hit("k", LIMIT) is False
    assert worker2.retry_after("k", LIMIT) == 60
    worker2.reset("k")
    assert worker1.remaining("k", LIMIT) == 3


def test_concurrent_threads_never_exceed_the_limit(db: Path) -> None:
    limit = Limit(count=50, seconds=3600)
    workers = [RateLimiter(db), RateLimiter(db)]
    results: list[bool] = []
    guard = threading.Lock()

    def attack(rl: RateLimiter) -> None:
        for _ in range(20):
            ok = rl.hit("k", limit)
            with guard:
                results.append(ok)

    threads = [threading.Thread(target=attack, args=(workers[i % 2],)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 240
    assert results.count(True) == 50
    assert rows(db) == 50


def _hits_in_process(db: str) -> int:
    rl = RateLimiter(db)
    return sum(rl.hit("k", Limit(count=60, seconds=3600)) for _ in range(30))


def test_concurrent_processes_never_exceed_the_limit(db: Path) -> None:
    RateLimiter(db)  # create the file before the workers race
    with multiprocessing.get_context("fork").Pool(4) as pool:
        allowed = pool.map(_hits_in_process, [str(db)] * 4)
    assert sum(allowed) == 60


def test_expired_rows_are_pruned(rl: RateLimiter, db: Path, clock: FakeClock) -> None:
    short = Limit(count=5, seconds=10)
    for i in range(200):
        rl.hit(f"login:ip:10.0.0.{i}", short)
    assert rows(db) == 200
    clock.advance(10)
    rl.hit("someone-else", short)
    assert rows(db) == 1
    for _ in range(20):  # refused hits add no rows: a key never holds more than count
        rl.hit("someone-else", short)
    assert rows(db) == 5


def test_app_limiter_is_created_once_on_its_file(app: Flask) -> None:
    with app.app_context():
        first = limiter()
        assert limiter() is first
        assert first.path == Path(app.config["RATELIMIT_DB"])


def test_app_limiter_uses_configured_path(app: Flask, tmp_path: Path) -> None:
    app.config["RATELIMIT_DB"] = str(tmp_path / "elsewhere" / "rl.sqlite")
    with app.app_context():
        assert limiter().path == tmp_path / "elsewhere" / "rl.sqlite"
    assert (tmp_path / "elsewhere" / "rl.sqlite").is_file()


@pytest.mark.parametrize(("addr", "key"), [
    ("203.0.113.7", "login:ip:203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "login:ip:2001:db8:1:2::/64"),
    ("not-an-address:x", "login:ip:not-an-address:x"),
])
def test_client_key(app: Flask, addr: str, key: str) -> None:
    with app.test_request_context("/login", environ_base={"REMOTE_ADDR": addr}):
        assert client_key("login") == key


@pytest.mark.parametrize("path", ["/login", "/api/reports"])
def test_too_many_is_429_with_retry_after(app: Flask, path: str) -> None:
    with app.test_request_context(path):
        response = app.make_response(too_many(125))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "125"
    body = response.get_data(as_text=True)
    assert "3 minute" in body or "3 phút" in body  # 125 s rounds up; vi once compiled
    assert response.is_json == path.startswith("/api/")
