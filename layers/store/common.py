"""The steps both stores share, so SQLite and PostGIS check, number and record alike.

Nothing here touches a connection: each helper takes plain values (or a row the store has
read) and returns values, or raises the typed errors of ``layers.errors``. The one piece
of SQL, ``audit_where``, is dialect-free but for the placeholder. Keeping the checks,
messages and audit payloads in one place is what lets the contract tests expect the same
answers from either store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, NamedTuple, Protocol

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from ..errors import (
    FeatureNotFound,
    InvalidFeature,
    LayerExists,
    LayerNotFound,
    UserExists,
    UserNotFound,
    VersionConflict,
)
from ..kinds import FieldDef, clean_properties, get_kind, property_cleaner
from ..messages import RESTORED_NOTE, Message
from ..text import TITLE_MAX, checked_text
from .base import (
    ROLES,
    AuditEntry,
    Feature,
    Layer,
    SessionPolicy,
    User,
    check_geometries,
    check_geometry,
    check_slug,
    layer_fields,
)

# The audit log's and timeline's name for reports from the public map.
CITIZEN = "citizen"

Item = tuple[BaseGeometry, dict[str, Any]]


class Row(Protocol):
    """A database row read by column name (``sqlite3.Row`` or a psycopg dict row)."""

    def __getitem__(self, key: str, /) -> Any: ...


# -- values ---------------------------------------------------------------------------------
def utc_now() -> str:
    """The time as ISO 8601 text to the second: both stores compare these strings byte-wise."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def json_text(value: Any) -> str:
    """JSON text (orjson: several times faster than json on bulk imports)."""
    return orjson.dumps(value).decode("utf-8")


def json_or_none(value: Any) -> str | None:
    """JSON text for a nullable column: no value stays SQL NULL rather than ``null``."""
    return None if value is None else json_text(value)


def parsed_already(value: Any) -> Any:
    """The JSON reader for a driver that hands JSON columns over parsed (psycopg)."""
    return value


# -- rows to records --------------------------------------------------------------------------
def to_layer(row: Row, load_json: Callable[[Any], Any]) -> Layer:
    """A Layer from its row; ``load_json`` reads the style and fields columns as stored."""
    return Layer(
        slug=row["slug"],
        title=row["title"],
        kind=row["kind"],
        geometry_type=row["geometry_type"],
        public=bool(row["public"]),
        style=load_json(row["style"]),
        fields=tuple(FieldDef.from_dict(f) for f in load_json(row["fields"])),
        data_version=row["data_version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        revision=row["revision"],
    )


def to_features(slug: str, rows: Sequence[Row], load_props: Callable[[Any], dict[str, Any]]
                ) -> list[Feature]:
    """Features from rows with a WKB ``geom``, parsed in one vectorised call per page."""
    geoms = shapely.from_wkb([r["geom"] for r in rows]) if rows else []
    return [
        Feature(
            id=r["id"],
            layer=slug,
            geometry=g,
            properties=load_props(r["props"]),
            version=r["version"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            archived_at=r["archived_at"],
        )
        for r, g in zip(rows, geoms, strict=True)
    ]


def to_audit_entry(row: Row, load_json: Callable[[Any], Any]) -> AuditEntry:
    """An AuditEntry from its row; ``load_json`` reads the before and after values."""
    before, after = row["before"], row["after"]
    return AuditEntry(row["id"], row["at"], row["actor"], row["action"], row["layer"],
                      row["feature_id"], None if before is None else load_json(before),
                      None if after is None else load_json(after), row["note"])


# -- input checks -----------------------------------------------------------------------------
def layer_not_found(slug: str) -> LayerNotFound:
    return LayerNotFound(Message("No layer named {slug!r}", slug=slug))


def layer_exists(slug: str) -> LayerExists:
    return LayerExists(Message("A layer named {slug!r} already exists", slug=slug))


def feature_not_found(slug: str, feature_id: int) -> FeatureNotFound:
    return FeatureNotFound(Message("Layer {slug!r} has no feature {id}", slug=slug,
                                   id=feature_id))


def _titled(title: str) -> str:
    """A title as stored: normalised, non-empty and no longer than ``TITLE_MAX``."""
    title = checked_text(title, "title", TITLE_MAX)
    if not title:
        raise InvalidFeature(Message("A layer needs a title"))
    return title


def checked_layer(slug: str, title: str, kind: str, geometry_type: str | None,
                  fields: Iterable[FieldDef] | None) -> tuple[str, str, tuple[FieldDef, ...]]:
    """``create_layer``'s title, geometry type and fields, checked; the kind fills gaps."""
    check_slug(slug)
    title = _titled(title.strip())
    return title, geometry_type or get_kind(kind).geometry_type, layer_fields(kind, fields)


def changed_layer(before: Layer, title: str | None, public: bool | None,
                  private_fields: Iterable[str] | None) -> Layer:
    """``before`` with ``update_layer``'s changes, checked; a ``None`` keeps the old value."""
    fields = before.fields
    if private_fields is not None:
        private = set(private_fields)
        unknown = sorted(private - {f.name for f in fields})
        if unknown:
            raise InvalidFeature(Message("Layer {slug!r} has no field(s) {names}",
                                         slug=before.slug, names=unknown))
        fields = tuple(replace(f, public=f.name not in private) for f in fields)
    new_title = _titled(before.title if title is None else title.strip())
    return replace(before, title=new_title, public=before.public if public is None else public,
                   fields=fields)


# -- accounts and sessions ---------------------------------------------------------------
USERNAME_MAX = 64
# Letters and digits of any script, and . _ @ -: no spaces, controls or direction marks.
USERNAME_RE = re.compile(r"[\w.@-]+")
# A session's last use is written at most this often (seconds), not on every request.
SESSION_REFRESH = 60


def user_key(username: str) -> str:
    """What makes two names one account: the NFC text without case (``ADMIN`` is ``admin``)."""
    return unicodedata.normalize("NFC", username.strip()).casefold()


def checked_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidFeature(Message("Role must be one of {roles}; got {role}",
                                     roles=list(ROLES), role=repr(role)))
    return role


def checked_user(username: str, role: str) -> str:
    """The username to store, trimmed and NFC; refuses a bad name or a role nobody holds."""
    username = unicodedata.normalize("NFC", username.strip())
    if not username:
        raise InvalidFeature(Message("A username cannot be empty"))
    if len(username) > USERNAME_MAX:
        raise InvalidFeature(Message("A username has at most {count} characters",
                                     count=USERNAME_MAX))
    if not USERNAME_RE.fullmatch(username):
        raise InvalidFeature(Message("A username may only hold letters, digits and . _ @ -"))
    if not any(c.isalnum() for c in username):  # "." or ".." would be a path, not a name
        raise InvalidFeature(Message("A username needs at least one letter or digit"))
    checked_role(role)
    return username


def user_exists(username: str) -> UserExists:
    return UserExists(Message("An account named {name} already exists", name=repr(username)))


def user_not_found(username: str) -> UserNotFound:
    return UserNotFound(Message("No account named {name}", name=repr(username)))


def changed_user(before: User, role: str | None, disabled: bool | None,
                 other_admins: int) -> tuple[User, list[tuple[str, Any, Any]]]:
    """``update_user``'s new account and its audit entries (action, before, after).

    ``other_admins`` counts the enabled administrators besides this account: the last one
    can neither be disabled nor lose the role, or nobody could manage accounts any more.
    """
    after = replace(before, role=checked_role(role) if role is not None else before.role,
                    disabled=before.disabled if disabled is None else disabled)
    was_admin = before.role == "admin" and not before.disabled
    if was_admin and not (after.role == "admin" and not after.disabled) and not other_admins:
        raise InvalidFeature(Message("At least one enabled administrator must remain"))
    entries: list[tuple[str, Any, Any]] = []
    if after.role != before.role:
        entries.append(("user.role", {"username": before.username, "role": before.role},
                        {"username": before.username, "role": after.role}))
    if after.disabled != before.disabled:
        entries.append(("user.disable" if after.disabled else "user.enable", None,
                        {"username": before.username}))
    return after, entries


def legacy_user_keys(usernames: Sequence[str]) -> list[tuple[str, str, bool]]:
    """(username, key, disable) for accounts made before names were unique without case,
    oldest first. A name differing from an older one only by case could no longer log in
    (login ignores case), so it is disabled and keyed with a space, which no name has."""
    seen: set[str] = set()
    out = []
    for name in usernames:
        key = user_key(name)
        duplicate = key in seen
        seen.add(key)
        out.append((name, f"{key} ~{name}" if duplicate else key, duplicate))
    return out


def new_session_token() -> tuple[str, str]:
    """(token for the browser's cookie, digest to store): a stolen database opens nothing."""
    token = secrets.token_urlsafe(32)
    return token, session_digest(token)


def session_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def session_cutoffs(policy: SessionPolicy, now: float) -> tuple[float, float]:
    """(last use, start) before which a session has ended by the idle or absolute limit."""
    return now - policy.idle_seconds, now - policy.max_seconds


def session_alive(created: float, seen: float, policy: SessionPolicy, now: float) -> bool:
    idle_before, started_before = session_cutoffs(policy, now)
    return seen > idle_before and created > started_before


def session_stale(seen: float, policy: SessionPolicy, now: float) -> bool:
    """Whether to write the session's last use now: every ``SESSION_REFRESH`` seconds, or
    more often under a short idle limit, so that a busy session never times out."""
    return now - seen > min(SESSION_REFRESH, policy.idle_seconds / 4)


# The earliest day an inspection may carry: older records are typing mistakes.
FIRST_INSPECTION = dt.date(1990, 1, 1)


def checked_inspection(inspected_on: str, finding: str) -> tuple[str, str]:
    """(day, finding) to store: a day that has come (tomorrow in UTC is today in Vietnam)
    and not before ``FIRST_INSPECTION``, the finding normalised and non-empty."""
    finding = checked_text(finding, "finding")
    if not finding:
        raise InvalidFeature(Message("An inspection needs its finding"))
    try:
        day = dt.date.fromisoformat(inspected_on)
    except ValueError:
        raise InvalidFeature(
            Message("The inspection date must be written YYYY-MM-DD")) from None
    latest = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    if not FIRST_INSPECTION <= day <= latest:
        raise InvalidFeature(Message("The inspection date must lie between {first} and today",
                                     first=FIRST_INSPECTION.strftime("%d/%m/%Y")))
    return day.isoformat(), finding


def range_operator(op: str) -> str:
    """A range filter's operator, checked against the two allowed: it is written into SQL."""
    if op not in (">=", "<="):
        raise ValueError(f"unsupported operator {op}")
    return op


def checked_restore(slug: str, data_version: int, current: int, known: bool) -> str:
    """Refuse restoring the current version or one never made; else the new version's note."""
    if data_version == current:
        raise InvalidFeature(Message("Version {version} of {slug!r} is already the current one",
                                     version=data_version, slug=slug))
    if not known:
        raise InvalidFeature(Message("Layer {slug!r} has no version {version}", slug=slug,
                                     version=data_version))
    return Message(RESTORED_NOTE, version=data_version)


# -- feature edits and batches ----------------------------------------------------------------
def check_version(current: Feature, expected_version: int) -> None:
    """Refuse a change made from an older version of the feature than the stored one.

    Raises VersionConflict carrying the feature as it is now, so the editor can merge.
    """
    if current.version != expected_version:
        raise VersionConflict(
            Message("Feature {id} was changed by someone else (now version {current}, your "
                    "edit was based on version {expected})", id=current.id,
                    current=current.version, expected=expected_version),
            current=current.to_geojson(),
        )


def checked_edit(layer: Layer, current: Feature, expected_version: int,
                 geometry: BaseGeometry | None, properties: dict[str, Any] | None
                 ) -> tuple[BaseGeometry, dict[str, Any]]:
    """The geometry and properties an edit leaves, if nobody changed the feature meanwhile."""
    check_version(current, expected_version)
    geom = check_geometry(layer, geometry) if geometry is not None else current.geometry
    props = current.properties if properties is None else properties
    if layer.fields:
        props = clean_properties(layer.fields, props)
    return geom, props


class Batch(NamedTuple):
    """Features checked and ready to write, and the number of the first for messages.

    ``keys`` are the values of the key column an import matches rows on later, if any.
    """

    geometries: np.ndarray
    properties: list[dict[str, Any]]
    first: int
    keys: list[str | None] | None = None


def checked_batch(layer: Layer, batch: list[Item], first: int) -> Batch:
    geoms = check_geometries(layer, [g for g, _ in batch], first)
    props = []
    clean = property_cleaner(layer.fields)
    for n, (_, p) in enumerate(batch, start=first):
        try:
            props.append(clean(p) if layer.fields else p)
        except InvalidFeature as exc:
            raise InvalidFeature(Message("Feature {n}: {problem}", n=n,
                                         problem=exc.message)) from None
    return Batch(geoms, props, first)


def insert_batches(layer: Layer, items: Iterable[Item], size: int,
                   insert: Callable[[Batch], list[int]],
                   keys: Sequence[str | None] | None = None) -> array[int]:
    """Check features ``size`` at a time and hand each batch to ``insert``; all the ids.

    A batch is read and checked only once the one before is written, so an import holds
    one batch in memory; errors name a feature by its position, counting from 1. ``keys``
    (one per item) travel with their features. The ids are kept as machine integers
    (8 bytes each, not a Python int's 36: a million-feature import holds all of them).
    """
    ids: array[int] = array("q")
    batch: list[Item] = []

    def flush() -> None:
        first = len(ids) + 1
        checked = checked_batch(layer, batch, first)
        if keys is not None:
            checked = checked._replace(keys=[key_text(k) for k in
                                             keys[first - 1:first - 1 + len(batch)]])
        ids.extend(insert(checked))

    for item in items:
        batch.append(item)
        if len(batch) == size:
            flush()
            batch = []
    if batch:
        flush()
    return ids


def key_text(value: Any) -> str | None:
    """A key cell as text to match on: ``7``, ``7.0`` and ``" 7 "`` are the same key."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


# -- audit rows and payloads ------------------------------------------------------------------
def audit_values(at: str | None, actor: str, action: str, layer: str | None,
                 feature_id: int | None, before: Any, after: Any, note: str) -> tuple[Any, ...]:
    """An audit row's column values in that order: now when ``at`` is not given, JSON text;
    the note (typed by a person, or naming a file) normalised and of bounded length."""
    return (at or utc_now(), actor, action, layer, feature_id, json_or_none(before),
            json_or_none(after), checked_text(note, "note"))


def created_entry(layer: Layer, count: int) -> dict[str, Any]:
    """``layer.create``'s after value: the layer as described, with its first features."""
    return {**layer.to_dict(), "features": count}


def added_entry(ids: list[int], feature: Callable[[int], Feature]
                ) -> tuple[str, int | None, dict[str, Any]]:
    """(action, feature id, after) for added features: a drawn one whole, many in summary."""
    if len(ids) == 1:  # one feature drawn or typed in: keep all of it
        return "feature.create", ids[0], feature(ids[0]).to_geojson()
    return "features.add", None, {"count": len(ids), "first_id": ids[0], "last_id": ids[-1]}


def inspection_entry(day: str, inspector: str, finding: str, photos: int) -> dict[str, Any]:
    """``inspection.add``'s after value; the photos themselves are counted, not copied."""
    return {"inspected_on": day, "inspector": inspector, "finding": finding, "photos": photos}


def report_photo_record(now: str) -> tuple[str, str, str]:
    """(inspected_on, inspector, finding) of the record that holds a citizen's photo: the
    photo belongs to the report, not to an inspection, so it has no finding."""
    return now[:10], CITIZEN, ""


def report_entry(properties: dict[str, Any], code: str) -> dict[str, Any]:
    """``report.create``'s after value: what the citizen said and the code they were given."""
    return {"properties": properties, "code": code}


def audit_where(mark: str, *, actor: str | None, layer: str | None, feature_id: int | None,
                since: str | None, until: str | None) -> tuple[str, list[Any]]:
    """``list_audit``'s condition and parameters; ``mark`` is the dialect's placeholder."""
    clauses, params = ["1 = 1"], []
    for column, value in (("actor", actor), ("layer", layer), ("feature_id", feature_id)):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    if since:
        clauses.append(f"at >= {mark}")
        params.append(since)
    if until:
        clauses.append(f"at < {mark}")
        params.append(until)
    return " AND ".join(clauses), params
