"""The production store: PostgreSQL with PostGIS.

Geometries live in a ``geometry(Geometry, 4326)`` column with a GiST index, properties
in JSONB. Every write is one transaction on a pooled connection; the layer row is locked
``FOR UPDATE`` first, so writers to one layer queue up as they do on SQLite.

Semantics kept identical to ``SQLiteStore`` (the contract tests run against both):

- ``bbox`` filters on bounding-box overlap (``geom && ST_MakeEnvelope(...)``), exactly
  what the SQLite R*Tree answers; a feature whose box touches the query box matches.
  Both indexes keep boxes in single precision rounded outwards (±1 m at worst), so a
  feature lying within that of the query box's edge may match in either store.
- Equality filters compare JSON values, so types matter: ``severity`` 2 matches the
  integer 2, never the text ``"2"``. Date ranges compare ISO text byte-wise.
- Timestamps and dates are ISO 8601 text (``COLLATE "C"``), as in SQLite, so
  ``list_audit(since=...)`` and timelines compare the same strings.
- JSONB does not keep key order; properties come back in the order of the layer's
  fields (the order they were cleaned into). Audit values are ``json`` and keep theirs.

Only the schema and SQL differ: checks, messages, batching and audit payloads come from
``common.py``, which ``sqlite.py`` calls too.
"""

from __future__ import annotations

import os
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
import shapely
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from shapely.geometry.base import BaseGeometry

from ..errors import InvalidFeature
from ..kinds import FieldDef
from ..messages import Message
from ..query import FeatureQuery
from ..tiles.grid import TileRequest
from .base import Feature, FeaturePage, Layer, LayerVersion, Store
from .common import (
    Batch,
    added_entry,
    changed_layer,
    checked_edit,
    checked_layer,
    created_entry,
    feature_not_found,
    insert_batches,
    json_text,
    layer_exists,
    layer_not_found,
    parsed_already,
    to_features,
    to_layer,
    utc_now,
)
from .place import first_revision, place_rows
from .postgis_accounts import ACCOUNTS_SCHEMA, PostGISAccountsMixin, upgrade_accounts
from .postgis_place import (
    PLACE_SCHEMA,
    SET_PLACE,
    add_sums,
    query_page,
    touch_layer,
    upgrade_place,
)
from .postgis_records import RECORDS_SCHEMA, PostGISRecordsMixin
from .postgis_reimport import FEATURES_UPGRADE, PostGISReimportMixin, upgrade_features
from .postgis_tiles import vector_tile

Row = dict[str, Any]

# Numbered as SQLite's schema is, so one version names one set of features in both.
SCHEMA_VERSION = 6
# Serialises schema creation between processes starting at once (any constant will do).
_MIGRATION_LOCK = 0x6715_0001
SCHEMA = """
CREATE TABLE IF NOT EXISTS gis_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    id BIGSERIAL PRIMARY KEY,
    slug TEXT COLLATE "C" NOT NULL UNIQUE,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    geometry_type TEXT NOT NULL,
    public BOOLEAN NOT NULL DEFAULT false,
    style JSONB NOT NULL DEFAULT '{}',
    fields JSONB NOT NULL DEFAULT '[]',
    data_version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE TABLE IF NOT EXISTS layer_versions (
    layer_id BIGINT NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    data_version INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (layer_id, data_version)
);
CREATE TABLE IF NOT EXISTS feature_archive (
    id BIGSERIAL PRIMARY KEY,
    layer_id BIGINT NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    data_version INTEGER NOT NULL,
    geom geometry(Geometry, 4326) NOT NULL,
    props JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS feature_archive_version
    ON feature_archive(layer_id, data_version, id);
CREATE TABLE IF NOT EXISTS features (
    id BIGSERIAL PRIMARY KEY,
    layer_id BIGINT NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    geom geometry(Geometry, 4326) NOT NULL,
    props JSONB NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS features_layer ON features(layer_id, id);
CREATE INDEX IF NOT EXISTS features_geom ON features USING GIST (geom);
""" + FEATURES_UPGRADE + PLACE_SCHEMA
FEATURE_COLUMNS = ("f.id, ST_AsBinary(f.geom) AS geom, f.props, f.version, f.created_at,"
                   " f.updated_at, f.archived_at")
# Row locks a write takes; callers name one by key, so no text from outside reaches SQL.
LOCKS = {"": "", "update": "FOR UPDATE", "share": "FOR SHARE"}


def _no_nul(texts: list[str], first: int) -> None:
    """PostgreSQL text and JSONB cannot hold U+0000; name the feature instead of a DB error."""
    for n, text in enumerate(texts, start=first):
        if "\\u0000" in text:
            raise InvalidFeature(Message("Feature {n}: {problem}", n=n, problem=Message(
                "text cannot contain the NUL character (U+0000)")))


def _property_order(fields: tuple[FieldDef, ...]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Put JSONB's reordered keys back in field order, as ``property_cleaner`` wrote them."""
    names = [f.name for f in fields]
    if not names:
        return lambda props: props

    def order(props: dict[str, Any]) -> dict[str, Any]:
        out = {k: props[k] for k in names if k in props}
        if len(out) != len(props):  # keys no field declares (stored before a kind changed)
            out.update((k, v) for k, v in props.items() if k not in out)
        return out

    return order


class _Pool:
    """A few idle connections reused across threads; one borrowed per store call.

    Per-thread connections would leak one connection per request under servers that
    start a thread per request, so connections are lent out and given back instead.
    A child process after ``fork`` never reuses its parent's sockets.
    """

    def __init__(self, dsn: str, keep: int = 8) -> None:
        self.dsn = dsn
        self.keep = keep
        self._idle: list[psycopg.Connection[Row]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._inherited: list[psycopg.Connection[Row]] = []

    def connect(self) -> psycopg.Connection[Row]:
        # Never prepared: after five uses psycopg would prepare a statement, and PostgreSQL
        # then plans it once for any box, scanning every match of a city-wide one.
        conn = psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row,
                               prepare_threshold=None)
        # A box query reads its key ranges in order through a nested loop and stops at the
        # page's end; parallel workers would hand rows back out of that order. Its cost
        # estimate (every range's worst case) also woke the JIT compiler, 4 ms a query.
        conn.execute("SET max_parallel_workers_per_gather = 0")
        conn.execute("SET jit = off")
        set_json_loads(orjson.loads, conn)
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Row]]:
        conn = None
        with self._lock:
            if self._pid != os.getpid():  # forked: keep the parent's sockets untouched
                self._inherited += self._idle
                self._idle, self._pid = [], os.getpid()
            while self._idle and conn is None:
                candidate = self._idle.pop()
                if candidate.closed or candidate.broken:
                    continue
                conn = candidate
        if conn is None:
            conn = self.connect()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _give_back(self, conn: psycopg.Connection[Row]) -> None:
        healthy = (not conn.closed and not conn.broken
                   and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE)
        with self._lock:
            if healthy and os.getpid() == self._pid and len(self._idle) < self.keep:
                self._idle.append(conn)
                return
        if os.getpid() == self._pid:
            conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class PostGISStore(PostGISAccountsMixin, PostGISRecordsMixin, PostGISReimportMixin,
                   Store):
    """Store backed by a PostgreSQL database with PostGIS; safe to share between threads.

    ``dsn`` is a libpq connection string or ``postgresql://`` URL.
    """

    BATCH = 10000  # features checked and copied per batch

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool = _Pool(dsn)
        self._migrate()

    def close(self) -> None:
        """Close the idle connections (those lent out close when given back)."""
        self._pool.close()

    def _migrate(self) -> None:
        """Create the schema, or refuse a database written by a newer version of the software.

        The ``gis_schema`` table records the schema version; later versions add their
        upgrade steps here, keyed by the version they upgrade from. The connection is
        closed afterwards, so a server may fork after opening the store.
        """
        with self._pool.connect() as conn, conn.transaction():
            where = f"Database {conn.info.dbname!r} on {conn.info.host}:{conn.info.port}"
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'"
                                ).fetchone():
                try:
                    with conn.transaction():
                        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                except psycopg.Error as exc:
                    raise RuntimeError(
                        f"{where} lacks the PostGIS extension and it could not be created"
                        f" ({exc.diag.message_primary or exc}); a database superuser must run"
                        " CREATE EXTENSION postgis in it") from None
            found = 0
            if conn.execute("SELECT to_regclass('gis_schema') AS t").fetchone()["t"]:
                found = conn.execute("SELECT coalesce(max(version), 0) AS v FROM gis_schema"
                                     ).fetchone()["v"]
            if found > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{where} was written by a newer gis_service (schema {found}); upgrade it"
                )
            if found < SCHEMA_VERSION:
                if 0 < found < 4:
                    upgrade_accounts(conn)
                if 0 < found < 5:
                    upgrade_features(conn)
                conn.execute(SCHEMA + RECORDS_SCHEMA + ACCOUNTS_SCHEMA)  # idempotent statements
                if 0 < found < 6:
                    upgrade_place(conn)
                conn.execute("DELETE FROM gis_schema")
                conn.execute("INSERT INTO gis_schema (version) VALUES (%s)", (SCHEMA_VERSION,))

    # -- connections and transactions -----------------------------------------------------
    @contextmanager
    def _con(self) -> Iterator[psycopg.Connection[Row]]:
        """A connection for reads, each statement on its own (autocommit)."""
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Row]]:
        """One write transaction: committed on success, rolled back on any exception."""
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    # -- layers ---------------------------------------------------------------------------
    @staticmethod
    def _layer_row(conn: psycopg.Connection[Row], slug: str, lock: str = "") -> Row:
        """The layer's row, locked as ``lock`` (a key of LOCKS) says."""
        row = conn.execute(f"SELECT * FROM layers WHERE slug = %s {LOCKS[lock]}",  # noqa: S608
                           (slug,)).fetchone()
        if row is None:
            raise layer_not_found(slug)
        return row

    @staticmethod
    def _to_layer(row: Row) -> Layer:
        return to_layer(row, parsed_already)

    def create_layer(
        self,
        slug: str,
        title: str,
        kind: str,
        *,
        geometry_type: str | None = None,
        public: bool = False,
        style: dict[str, Any] | None = None,
        fields: Iterable[FieldDef] | None = None,
        features: Iterable[tuple[BaseGeometry, dict[str, Any]]] = (),
        keys: Sequence[str | None] | None = None,
        note: str = "",
        actor: str = "system",
    ) -> Layer:
        title, geometry_type, field_defs = checked_layer(slug, title, kind, geometry_type, fields)
        now = utc_now()
        with self._tx() as conn:
            row = conn.execute(
                "INSERT INTO layers (slug, title, kind, geometry_type, public, style, fields,"
                " created_at, updated_at, revision) VALUES (%s, %s, %s, %s, %s, %s::jsonb,"
                " %s::jsonb, %s, %s, %s) ON CONFLICT (slug) DO NOTHING RETURNING *",
                (slug, title, kind, geometry_type, bool(public), json_text(style or {}),
                 json_text([f.to_dict() for f in field_defs]), now, now, first_revision()),
            ).fetchone()
            if row is None:
                raise layer_exists(slug)
            layer = self._to_layer(row)
            count = len(self._insert_many(conn, row, features, now, keys))
            self._log_version(conn, row["id"], 1, note, now)
            self._audit(conn, actor, "layer.create", layer=slug, note=note, at=now,
                        after=created_entry(layer, count))
        return layer

    def get_layer(self, slug: str) -> Layer:
        with self._con() as conn:
            return self._to_layer(self._layer_row(conn, slug))

    def update_layer(self, slug: str, *, title: str | None = None, public: bool | None = None,
                     private_fields: Iterable[str] | None = None, actor: str = "system"
                     ) -> Layer:
        now = utc_now()
        with self._tx() as conn:
            before = self._to_layer(self._layer_row(conn, slug, "update"))
            changed = changed_layer(before, title, public, private_fields)
            row = conn.execute(
                "UPDATE layers SET title = %s, public = %s, fields = %s::jsonb, updated_at = %s"
                " WHERE slug = %s RETURNING *",
                (changed.title, bool(changed.public),
                 json_text([f.to_dict() for f in changed.fields]), now, slug),
            ).fetchone()
            after = self._to_layer(row)
            self._audit(conn, actor, "layer.update", layer=slug, at=now,
                        before=before.to_dict(), after=after.to_dict())
        return after

    def list_layers(self, *, public_only: bool = False) -> list[Layer]:
        with self._con() as conn:
            rows = conn.execute("SELECT * FROM layers WHERE public OR NOT %s ORDER BY id",
                                (bool(public_only),)).fetchall()
        return [self._to_layer(r) for r in rows]

    def delete_layer(self, slug: str, *, actor: str = "system") -> None:
        with self._tx() as conn:
            row = self._layer_row(conn, slug, "update")
            self._audit(conn, actor, "layer.delete", layer=slug,
                        before=self._to_layer(row).to_dict())
            # Features, versions and the archive go with it (ON DELETE CASCADE).
            conn.execute("DELETE FROM layers WHERE id = %s", (row["id"],))

    # -- features -------------------------------------------------------------------------
    def add_features(
        self, slug: str, items: Iterable[tuple[BaseGeometry, dict[str, Any]]], *,
        actor: str = "system", note: str = "",
    ) -> list[int]:
        now = utc_now()
        with self._tx() as conn:
            row = self._layer_row(conn, slug, "update")
            ids = list(self._insert_many(conn, row, items, now))
            conn.execute("UPDATE layers SET updated_at = %s WHERE id = %s", (now, row["id"]))
            if ids:
                action, feature_id, after = added_entry(ids, lambda i: self._feature(conn, row, i))
                self._audit(conn, actor, action, layer=slug, feature_id=feature_id, after=after,
                            note=note, at=now)
        return ids

    def _insert_many(
        self,
        conn: psycopg.Connection[Row],
        row: Row,
        items: Iterable[tuple[BaseGeometry, dict[str, Any]]],
        now: str,
        keys: Sequence[str | None] | None = None,
    ) -> array[int]:
        """Check and insert features inside the caller's transaction, a batch at a time.

        After a large insert the table's statistics are renewed: planned on stale ones,
        PostgreSQL took the place index for a query by id and read the whole layer.
        """
        ids = insert_batches(self._to_layer(row), items, self.BATCH,
                             lambda batch: self._insert_batch(conn, row["id"], batch, now), keys)
        if len(ids) >= self.BATCH:
            conn.execute("ANALYZE features")
        return ids

    def _insert_batch(self, conn: psycopg.Connection[Row], layer_id: int, batch: Batch,
                      now: str) -> list[int]:
        """COPY one checked batch in; its ids, in the items' order.

        Each feature is its own baseline (none is stored) until staff edit it or an import
        changes it (``reimport``): the row holds one copy of its data, not two.
        """
        props = [json_text(p) for p in batch.properties]
        _no_nul(props, batch.first)
        # Ids are drawn from the sequence first, so they are known, ascending and in the
        # order of the items, whatever other writers do meanwhile.
        ids = sorted(conn.execute(
            "SELECT ARRAY(SELECT nextval('features_id_seq') FROM generate_series(1, %s)) AS ids",
            (len(props),)).fetchone()["ids"])
        ewkb = shapely.to_wkb(shapely.set_srid(batch.geometries, 4326), hex=True,
                              include_srid=True)
        keys = batch.keys or [None] * len(ids)
        places = place_rows(batch.geometries)
        with conn.cursor().copy(
            "COPY features (id, layer_id, geom, props, created_at, updated_at, import_key,"
            " hkey, minx, miny, maxx, maxy) FROM STDIN"
        ) as copy:
            for i, g, p, k, place in zip(ids, ewkb.tolist(), props, keys, places, strict=True):
                copy.write_row((i, layer_id, g, p, now, now, k, *place))
        touch_layer(conn, layer_id, places)
        add_sums(conn, layer_id, ids[0], ids[-1])
        return ids

    @staticmethod
    def _log_version(
        conn: psycopg.Connection[Row], layer_id: int, version: int, note: str, now: str
    ) -> None:
        conn.execute(
            "INSERT INTO layer_versions (layer_id, data_version, note, created_at)"
            " VALUES (%s, %s, %s, %s)",
            (layer_id, version, note, now),
        )

    def list_versions(self, slug: str) -> list[LayerVersion]:
        with self._con() as conn:
            row = self._layer_row(conn, slug)
            rows = conn.execute(
                "SELECT v.*, CASE WHEN v.data_version = l.data_version"
                " THEN (SELECT count(*) FROM features f WHERE f.layer_id = l.id"
                " AND f.archived_at IS NULL)"
                " ELSE (SELECT count(*) FROM feature_archive a WHERE a.layer_id = l.id"
                " AND a.data_version = v.data_version) END AS features"
                " FROM layer_versions v JOIN layers l ON l.id = v.layer_id"
                " WHERE l.id = %s ORDER BY v.data_version DESC",
                (row["id"],),
            ).fetchall()
        current = row["data_version"]
        return [LayerVersion(r["data_version"], int(r["features"]), r["note"], r["created_at"],
                             r["data_version"] == current) for r in rows]

    @staticmethod
    def _to_features(slug: str, fields: tuple[FieldDef, ...], rows: list[Row]) -> list[Feature]:
        return to_features(slug, rows, _property_order(fields))

    def query_features(self, slug: str, query: FeatureQuery) -> FeaturePage:
        with self._con() as conn:
            row = self._layer_row(conn, slug)
            rows, matched, after = query_page(conn, row, query)
        return FeaturePage(self._to_features(slug, self._to_layer(row).fields, rows), matched,
                           query, after)

    def _feature_row(self, conn: psycopg.Connection[Row], slug: str, feature_id: int,
                     lock: str = "") -> Row:
        layer_id = self._layer_row(conn, slug)["id"]
        return self._feature_row_in(conn, layer_id, slug, feature_id, lock)

    @staticmethod
    def _feature_row_in(conn: psycopg.Connection[Row], layer_id: int, slug: str,
                        feature_id: int, lock: str = "", archived: bool = False) -> Row:
        """A current feature's row (or an archived one's too): archived ones take no edits."""
        row = conn.execute(
            f"SELECT {FEATURE_COLUMNS} FROM features f"  # noqa: S608
            " WHERE f.id = %s AND f.layer_id = %s AND (f.archived_at IS NULL OR %s)"
            f" {LOCKS[lock]}",
            (feature_id, layer_id, archived),
        ).fetchone()
        if row is None:
            raise feature_not_found(slug, feature_id)
        return row

    def _feature(self, conn: psycopg.Connection[Row], layer_row: Row, feature_id: int,
                 lock: str = "", archived: bool = False) -> Feature:
        row = self._feature_row_in(conn, layer_row["id"], layer_row["slug"], feature_id, lock,
                                   archived)
        return self._to_features(layer_row["slug"], self._to_layer(layer_row).fields, [row])[0]

    def get_feature(self, slug: str, feature_id: int, *, archived: bool = False) -> Feature:
        with self._con() as conn:
            return self._feature(conn, self._layer_row(conn, slug), feature_id,
                                 archived=archived)

    def update_feature(
        self,
        slug: str,
        feature_id: int,
        *,
        expected_version: int,
        geometry: BaseGeometry | None = None,
        properties: dict[str, Any] | None = None,
        actor: str = "system",
        action: str = "feature.update",
        note: str = "",
    ) -> Feature:
        now = utc_now()
        with self._tx() as conn:
            layer_row = self._layer_row(conn, slug, "share")
            layer = self._to_layer(layer_row)
            current = self._feature(conn, layer_row, feature_id, "update")
            geom, props = checked_edit(layer, current, expected_version, geometry, properties)
            props_json = json_text(props)
            _no_nul([props_json], 1)
            places = place_rows([geom])
            add_sums(conn, layer_row["id"], feature_id, feature_id, -1)
            conn.execute(
                "UPDATE features SET base_geom = coalesce(base_geom, ST_AsBinary(geom)),"  # noqa: S608
                " base_props = coalesce(base_props, props), geom = ST_GeomFromWKB(%s, 4326),"
                " props = %s::jsonb, version = version + 1, updated_at = %s,"
                f" {SET_PLACE} WHERE id = %s",
                (shapely.to_wkb(geom), props_json, now, *places[0], feature_id),
            )
            touch_layer(conn, layer_row["id"], places)
            add_sums(conn, layer_row["id"], feature_id, feature_id)
            updated = self._feature(conn, layer_row, feature_id)
            self._audit(conn, actor, action, layer=slug, feature_id=feature_id, note=note,
                        before=current.to_geojson(), after=updated.to_geojson(), at=now)
        return updated

    def extent(self, slug: str) -> tuple[float, float, float, float] | None:
        with self._con() as conn:
            layer_id = self._layer_row(conn, slug)["id"]
            row = conn.execute(
                "SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1"
                " FROM (SELECT ST_Extent(geom) AS e FROM features WHERE layer_id = %s"
                " AND archived_at IS NULL) s",
                (layer_id,),
            ).fetchone()
        return None if row["x0"] is None else (row["x0"], row["y0"], row["x1"], row["y1"])

    def count_features(self, slug: str) -> int:
        with self._con() as conn:
            layer_id = self._layer_row(conn, slug)["id"]
            row = conn.execute("SELECT count(*) AS n FROM features WHERE layer_id = %s"
                               " AND archived_at IS NULL", (layer_id,)).fetchone()
        return int(row["n"])

    def vector_tile(self, slug: str, request: TileRequest) -> bytes:
        with self._con() as conn:
            return vector_tile(conn, self._layer_row(conn, slug), request)
