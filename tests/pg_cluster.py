"""A private PostgreSQL + PostGIS cluster for the tests, started once per test process.

``cluster()`` runs ``initdb`` in a temporary directory (as the ``postgres`` OS user when
the tests run as root, since PostgreSQL refuses to run as root), starts it on 127.0.0.1
at a free port with its socket in that directory, and stops and removes it at exit.
``Cluster.new_schema()`` gives each test a fresh schema in a shared database that has the
``postgis`` extension (milliseconds); ``new_database()`` a whole database cloned from a
template with PostGIS (a quarter of a second), for tests about the database itself.

Missing server binaries or PostGIS are an error, never a skip: install them with
``apt-get install postgresql postgresql-15-postgis-3 postgis`` (or point ``PG_BINDIR`` at
the directory holding ``initdb`` and ``pg_ctl``).
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

INSTALL_HINT = (
    "PostgreSQL with PostGIS is needed for the PostGIS store tests. Install it with\n"
    "  apt-get install -y --no-install-recommends postgresql postgresql-15-postgis-3 postgis\n"
    "or set PG_BINDIR to the directory holding initdb and pg_ctl."
)
TEMPLATE = "gis_template"  # has PostGIS; new databases are cloned from it
SHARED = "gis_tests"  # has PostGIS; tests get a schema each in it


class ClusterError(RuntimeError):
    """The private cluster could not be started; the message says what to install or fix."""


def find_bindir() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``: $PG_BINDIR, Debian's newest, or $PATH."""
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(d) for d in debian),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).parent)  # type: ignore[arg-type]
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise ClusterError(f"initdb/pg_ctl not found. {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running private cluster; ``dsn()`` connects as the trusted ``postgres`` superuser."""

    root: Path
    bindir: Path
    port: int
    as_postgres: bool
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def new_database(self) -> str:
        """A fresh database with PostGIS; returns its DSN."""
        with self._lock:
            name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
        return self.dsn(name)

    def new_schema(self) -> str:
        """A fresh, empty schema in the shared PostGIS database; returns a DSN using it.

        Much quicker than a database per test (no files to copy): the DSN sets
        ``search_path`` to the schema, then ``public`` where PostGIS lives.
        """
        with self._lock:
            name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn(SHARED), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return psycopg.conninfo.make_conninfo(self.dsn(SHARED),
                                              options=f"-c search_path={name},public")

    def drop_schema(self, dsn: str) -> None:
        """Drop a schema from ``new_schema`` with everything in it."""
        options = psycopg.conninfo.conninfo_to_dict(dsn)["options"]
        name = str(options).removeprefix("-c search_path=").split(",")[0]
        with psycopg.connect(self.dsn(SHARED), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    def drop_database(self, dsn: str) -> None:
        """Drop a database from ``new_database``, ending any connection still open to it."""
        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as the postgres OS user when we are root."""
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=120)

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


_cluster: Cluster | ClusterError | None = None
_cluster_lock = threading.Lock()


def cluster() -> Cluster:
    """The process's private cluster, started on first use; raises ClusterError if it can't."""
    global _cluster
    with _cluster_lock:
        if _cluster is None:
            try:
                _cluster = _start()
            except ClusterError as exc:
                _cluster = exc
        if isinstance(_cluster, ClusterError):
            raise _cluster
        return _cluster


def _start() -> Cluster:
    bindir = find_bindir()
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="gis-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    c = Cluster(root, bindir, 0, as_postgres)
    init = c.run("initdb", "-D", str(root / "data"), "-U", "postgres", "-A", "trust", "-E",
                 "UTF8", "--locale=C.UTF-8", "--no-sync")
    if init.returncode:
        shutil.rmtree(root, ignore_errors=True)
        raise ClusterError(f"initdb failed:\n{init.stdout}{init.stderr}")
    started = None
    for _ in range(5):  # a free port can be taken between choosing and binding it
        c.port = _free_port()
        options = (f"-p {c.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        started = c.run("pg_ctl", "-D", str(root / "data"), "-o", options,
                        "-l", str(root / "server.log"), "-w", "start")
        if started.returncode == 0:
            break
    if started is None or started.returncode:
        log = (root / "server.log").read_text(errors="replace") if (
            root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise ClusterError(f"pg_ctl start failed:\n{started and started.stderr}\n{log}")
    atexit.register(c.stop)
    try:
        with psycopg.connect(c.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        with psycopg.connect(c.dsn(TEMPLATE), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")
        with psycopg.connect(c.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {SHARED} TEMPLATE {TEMPLATE}")
    except psycopg.Error as exc:
        raise ClusterError(f"Could not create the PostGIS template database ({exc}). "
                           f"{INSTALL_HINT}") from None
    return c
