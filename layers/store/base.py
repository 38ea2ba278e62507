"""The Store interface every backend implements, and the records it returns.

Backends keep dialect details to themselves; callers see shapely geometries in
EPSG:4326, plain dicts of typed properties and the typed errors of ``layers.errors``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from ..errors import InvalidFeature
from ..kinds import FieldDef, get_kind
from ..messages import Message, recognise
from ..query import FeatureQuery

if TYPE_CHECKING:
    from ..tiles.grid import TileRequest
    from .reimport import ReplacePlan

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ROLES = ("admin", "planner", "inspector")
TYPE_IDS = {"Point": 0, "LineString": 1, "Polygon": 3, "MultiPoint": 4, "MultiLineString": 5,
            "MultiPolygon": 6}
# Layers of these geometry types are drawn as markers and clustered.
POINT_TYPES = ("Point", "MultiPoint")
GEOMETRY_FAMILIES = {
    "Point": {"Point", "MultiPoint"},
    "LineString": {"LineString", "MultiLineString"},
    "MultiPolygon": {"Polygon", "MultiPolygon"},
    "Polygon": {"Polygon", "MultiPolygon"},
}


@dataclass(frozen=True)
class Layer:
    """A layer's description; its features live in the store beside it."""

    slug: str
    title: str
    kind: str
    geometry_type: str
    public: bool = False
    style: dict[str, Any] = field(default_factory=dict)
    fields: tuple[FieldDef, ...] = ()
    data_version: int = 1
    created_at: str = ""
    updated_at: str = ""
    # Counts every write to the layer's features: what caches of its tiles are keyed by.
    revision: int = 0

    @property
    def color_by(self) -> str | None:
        """The field whose values colour the layer's features and split its clusters."""
        return self.style.get("color_by", get_kind(self.kind).color_by)

    def to_dict(self, lang: str = "vi") -> dict[str, Any]:
        return {
            "slug": self.slug,
            "title": self.title,
            "kind": self.kind,
            "kind_label": get_kind(self.kind).label(lang),
            "geometry_type": self.geometry_type,
            "public": self.public,
            "style": self.style,
            "fields": [f.to_dict() for f in self.fields],
            "data_version": self.data_version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Feature:
    """One stored feature: geometry in EPSG:4326, typed properties and its edit version."""

    id: int
    layer: str
    geometry: BaseGeometry
    properties: dict[str, Any]
    version: int
    created_at: str
    updated_at: str
    # When a re-import left it out: then it is off maps and queries, its history kept.
    archived_at: str | None = None

    def to_geojson(self, properties: tuple[str, ...] | None = None) -> dict[str, Any]:
        """GeoJSON with edit metadata; or, when ``properties`` names what to keep, a lean
        form for drawing: just those properties, coordinates to 7 decimals (1 cm), no meta.
        """
        if properties is None:
            return {
                "type": "Feature",
                "id": self.id,
                "geometry": mapping(self.geometry),
                "properties": self.properties,
                "meta": {
                    "version": self.version,
                    "created_at": self.created_at,
                    "updated_at": self.updated_at,
                    **({"archived_at": self.archived_at} if self.archived_at else {}),
                },
            }
        return {
            "type": "Feature",
            "id": self.id,
            "geometry": mapping(shapely.transform(self.geometry, lambda c: np.round(c, 7))),
            "properties": {k: self.properties[k] for k in properties if k in self.properties},
        }


@dataclass(frozen=True)
class FileWins:
    """Where the planner chose the file's value over the staff's: single (feature, field)
    pairs, or whole fields (``"*"`` for all)."""

    pairs: frozenset[tuple[int, str]] = frozenset()
    fields: frozenset[str] = frozenset()

    def __call__(self, feature_id: int, name: str) -> bool:
        return (feature_id, name) in self.pairs or name in self.fields or "*" in self.fields


STAFF_WINS = FileWins()  # the default: every conflict keeps the staff's value


@dataclass(frozen=True)
class FeaturePage:
    """One page of a query's matches.

    ``matched`` counts every match when that is cheap (up to ``place.count_cap``) and is
    None beyond; ``next_after`` is the ``after`` of the following page, None on the last.
    """

    features: list[Feature]
    matched: int | None
    query: FeatureQuery
    next_after: tuple[int, int] | None = None


@dataclass(frozen=True)
class LayerVersion:
    """One version of a layer's data; each import or restore makes a new one."""

    data_version: int
    feature_count: int
    note: str
    created_at: str
    current: bool

    def __post_init__(self) -> None:
        # Read back as text: the note becomes the Message it was written from, if any.
        object.__setattr__(self, "note", recognise(self.note))


@dataclass(frozen=True)
class AuditEntry:
    """One recorded change: who, when, what, and the values before and after."""

    id: int
    at: str
    actor: str
    action: str
    layer: str | None
    feature_id: int | None
    before: Any
    after: Any
    note: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "note", recognise(self.note))

    def changes(self) -> list[tuple[str, Any, Any]]:
        """(property, before, after) for each property of a feature this entry changed, in
        the feature's order; empty for entries that are not about a feature's properties."""
        before, after = _properties(self.before), _properties(self.after)
        keys = dict.fromkeys([*before, *after])
        return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


def _properties(value: Any) -> dict[str, Any]:
    """The properties of a feature as an audit entry keeps it (GeoJSON), else nothing."""
    props = value.get("properties") if isinstance(value, dict) else None
    return props if isinstance(props, dict) else {}


@dataclass(frozen=True)
class Inspection:
    """A visit to a feature (usually a hotspot) and what the inspector found."""

    id: int
    inspected_on: str
    inspector: str
    finding: str
    created_at: str
    photo_ids: tuple[int, ...]


@dataclass(frozen=True)
class StoredPhoto:
    """A sanitised photo of an inspection."""

    id: int
    layer: str
    feature_id: int
    mime: str
    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class PublicMap:
    """A read-only map for the city website: which public layers, where, which controls."""

    slug: str
    title: str
    layers: tuple[str, ...]
    bounds: tuple[float, float, float, float] | None = None
    controls: tuple[str, ...] = ("fullscreen", "locate", "legend", "report")

    def to_dict(self) -> dict[str, Any]:
        return {"slug": self.slug, "title": self.title, "layers": list(self.layers),
                "bounds": list(self.bounds) if self.bounds else None,
                "controls": list(self.controls)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PublicMap:
        bounds = data.get("bounds")
        return cls(data["slug"], data["title"], tuple(data["layers"]),
                   tuple(bounds) if bounds else None, tuple(data.get("controls", ())))


@dataclass(frozen=True)
class User:
    """An account. The password is only ever held as a hash.

    A disabled account keeps its name and history but cannot log in; an account whose
    password an administrator reset must choose a new one at its next login.
    """

    username: str
    password_hash: str
    role: str
    created_at: str = ""
    disabled: bool = False
    must_change_password: bool = False


@dataclass(frozen=True)
class SessionPolicy:
    """How long a login lasts: ``idle_seconds`` without a request, ``max_seconds`` in all."""

    idle_seconds: int
    max_seconds: int


def layer_fields(kind: str, fields: Iterable[FieldDef] | None) -> tuple[FieldDef, ...]:
    """Fields of a new layer: the declared ones for a generic layer, else the kind's own.

    A standard kind's definitions always win; only the public flags of declared fields of
    the same name are kept, so a planner can keep a field internal.
    """
    k = get_kind(kind)
    if kind == "generic":
        return tuple(fields or ())
    private = {f.name for f in fields or () if not f.public}
    return tuple(replace(f, public=f.name not in private) for f in k.fields)


def check_slug(slug: str) -> str:
    if not SLUG_RE.match(slug):
        raise InvalidFeature(Message(
            "A layer slug must be 1–63 lowercase letters, digits, '-' or '_', starting with a "
            "letter or digit; got {slug!r}", slug=slug))
    return slug


def check_geometries(layer: Layer, geoms: list[BaseGeometry | None], first: int = 1
                     ) -> np.ndarray:
    """Refuse empty, invalid or wrong-type geometries and coordinates outside degrees.

    Checks a whole batch at once (GEOS is vectorised); the error names the first bad
    feature by its position, counting from ``first``.
    """
    array = np.asarray(geoms, dtype=object)
    family = GEOMETRY_FAMILIES.get(layer.geometry_type)

    def fail(mask: np.ndarray, problem: Message) -> None:
        if mask.any():
            raise InvalidFeature(Message("Feature {n}: {problem}",
                                         n=first + int(np.argmax(mask)), problem=problem))

    fail(shapely.is_missing(array) | shapely.is_empty(array),
         Message("A feature needs a non-empty geometry"))
    if family:
        types = shapely.get_type_id(array)
        allowed = [TYPE_IDS[name] for name in family]
        bad = ~np.isin(types, allowed)
        if bad.any():
            kind = array[int(np.argmax(bad))].geom_type
            fail(bad, Message("Layer {slug!r} holds {expected} features, not {kind}",
                              slug=layer.slug, expected=layer.geometry_type, kind=kind))
    bounds = shapely.bounds(array)
    fail((bounds[:, 0] < -180) | (bounds[:, 2] > 180) | (bounds[:, 1] < -90)
         | (bounds[:, 3] > 90), Message("Coordinates must be longitude/latitude in EPSG:4326"))
    fail(~shapely.is_valid(array),
         Message("The geometry is invalid (for example a self-intersecting ring)"))
    return array


def check_geometry(layer: Layer, geom: BaseGeometry | None) -> BaseGeometry:
    """One geometry through ``check_geometries``, with the feature-number prefix dropped."""
    try:
        return check_geometries(layer, [geom])[0]
    except InvalidFeature as exc:
        raise InvalidFeature(exc.message.params["problem"]) from None


class Store(ABC):
    """Persistent layers, features and accounts. Every write is one transaction."""

    # Layers
    @abstractmethod
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
        """Create a layer with its first features in one transaction: all of it, or nothing.

        ``keys`` (one per feature) are the values of the file's key column, which later
        imports match rows on. Raises LayerExists, or InvalidFeature naming the first bad
        feature.
        """

    @abstractmethod
    def get_layer(self, slug: str) -> Layer:
        """Return a layer; raises LayerNotFound."""

    @abstractmethod
    def update_layer(self, slug: str, *, title: str | None = None, public: bool | None = None,
                     private_fields: Iterable[str] | None = None, actor: str = "system"
                     ) -> Layer:
        """Change a layer's title, public flag or which of its fields stay internal."""

    @abstractmethod
    def list_layers(self, *, public_only: bool = False) -> list[Layer]:
        """All layers, in creation order."""

    @abstractmethod
    def delete_layer(self, slug: str, *, actor: str = "system") -> None:
        """Remove a layer and its features; raises LayerNotFound."""

    # Features
    @abstractmethod
    def add_features(
        self, slug: str, items: Iterable[tuple[BaseGeometry, dict[str, Any]]], *,
        actor: str = "system", note: str = "",
    ) -> list[int]:
        """Add features atomically: all are stored, or none (InvalidFeature names the bad one)."""

    @abstractmethod
    def plan_replace(
        self, slug: str, items: Sequence[tuple[BaseGeometry, dict[str, Any]]], *,
        keys: Sequence[str | None] | None = None, file_wins: FileWins = STAFF_WINS,
    ) -> ReplacePlan:
        """What ``replace_features`` with the same arguments would do; changes nothing."""

    @abstractmethod
    def replace_features(
        self, slug: str, items: Sequence[tuple[BaseGeometry, dict[str, Any]]], *,
        keys: Sequence[str | None] | None = None, file_wins: FileWins = STAFF_WINS,
        expected_version: int | None = None, note: str = "", actor: str = "system",
    ) -> int:
        """Make ``items`` the layer's data atomically, keeping the old data as a version.

        Rows whose key (``keys``, one per item) matches a feature update it, keeping its
        id, history and the fields staff changed unless ``file_wins``; other rows become
        new features; features no row matches are archived. Without keys nothing matches.
        ``expected_version`` refuses (VersionConflict) a layer replaced since the planner
        saw the diff. Returns the new data version number.
        """

    @abstractmethod
    def list_versions(self, slug: str) -> list[LayerVersion]:
        """The layer's data versions, newest first."""

    @abstractmethod
    def plan_restore(self, slug: str, data_version: int, *, file_wins: FileWins = STAFF_WINS
                     ) -> ReplacePlan:
        """What ``restore_version`` would do; changes nothing."""

    @abstractmethod
    def restore_version(self, slug: str, data_version: int, *, file_wins: FileWins = STAFF_WINS,
                        expected_version: int | None = None, actor: str = "system") -> int:
        """Make an earlier version's features current again, as a new version.

        Features are matched by id, so they come back with their history; staff changes
        since win as in ``replace_features``.
        """

    @abstractmethod
    def query_features(self, slug: str, query: FeatureQuery) -> FeaturePage:
        """Features of a layer matching a query, in id order."""

    @abstractmethod
    def get_feature(self, slug: str, feature_id: int, *, archived: bool = False) -> Feature:
        """One current feature (or an archived one too, with ``archived``); raises
        LayerNotFound or FeatureNotFound."""

    @abstractmethod
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
        """Change a feature if it is still at ``expected_version``; else VersionConflict.

        The audit log records ``action`` with the values before and after.
        """

    @abstractmethod
    def extent(self, slug: str) -> tuple[float, float, float, float] | None:
        """Bounding box of a layer's features, or None when it has none."""

    @abstractmethod
    def count_features(self, slug: str) -> int:
        """Number of features in a layer."""

    @abstractmethod
    def vector_tile(self, slug: str, request: TileRequest) -> bytes:
        """One tile of a layer as MVT bytes (``layers.tiles``): its features in the tile
        with only the request's properties, or clusters of its points at low zoom; the
        same tile from either store. Raises LayerNotFound."""

    # Records
    @abstractmethod
    def list_audit(self, *, actor: str | None = None, layer: str | None = None,
                   feature_id: int | None = None, since: str | None = None,
                   until: str | None = None, limit: int = 200, offset: int = 0,
                   ) -> tuple[list[AuditEntry], int]:
        """Audit entries, newest first, and how many match in all."""

    @abstractmethod
    def add_inspection(self, slug: str, feature_id: int, *, inspected_on: str, inspector: str,
                       finding: str, photos: tuple[tuple[str, int, int, bytes], ...] = (),
                       actor: str = "system") -> int:
        """Record an inspection with its photos (mime, width, height, data) in one go."""

    @abstractmethod
    def list_inspections(self, slug: str, feature_id: int) -> list[Inspection]:
        """A feature's inspections, newest first."""

    @abstractmethod
    def get_photo(self, photo_id: int) -> StoredPhoto:
        """One photo; raises FeatureNotFound."""

    @abstractmethod
    def save_public_map(self, public_map: PublicMap, *, actor: str = "system") -> None:
        """Create or replace a public map's configuration."""

    @abstractmethod
    def get_public_map(self, slug: str) -> PublicMap:
        """One public map; raises LayerNotFound."""

    @abstractmethod
    def list_public_maps(self) -> list[PublicMap]:
        """All public maps, by slug."""

    @abstractmethod
    def create_report(self, slug: str, geometry: BaseGeometry, properties: dict[str, Any], *,
                      code: str, contact: str = "",
                      photo: tuple[str, int, int, bytes] | None = None) -> int:
        """Store a citizen report (hotspot, private contact, photo) in one transaction."""

    @abstractmethod
    def find_report(self, code: str) -> tuple[str, int]:
        """(layer, feature id) of the report with that reference code."""

    @abstractmethod
    def report_contact(self, slug: str, feature_id: int) -> tuple[str, str] | None:
        """(reference code, contact) of the citizen report behind a hotspot, for inspectors."""

    # Accounts
    @abstractmethod
    def create_user(self, username: str, password_hash: str, role: str, *,
                    must_change_password: bool = False, actor: str = "system") -> User:
        """Create an account; raises UserExists (names are unique whatever their case) or
        InvalidFeature for a bad name or role."""

    @abstractmethod
    def get_user(self, username: str) -> User | None:
        """The account with that name in any case (``ADMIN`` finds ``admin``), or None."""

    @abstractmethod
    def list_users(self) -> list[User]:
        """All accounts, by name."""

    @abstractmethod
    def update_user(self, username: str, *, role: str | None = None,
                    disabled: bool | None = None, actor: str = "system") -> User:
        """Change an account's role or disable/enable it; disabling ends its sessions.

        Raises UserNotFound, or InvalidFeature when no enabled administrator would remain.
        """

    @abstractmethod
    def set_password(self, username: str, password_hash: str, *, must_change: bool,
                     actor: str = "system") -> None:
        """Store a new password hash and end every session of the account."""

    # Sessions: the browser holds a random token, the store only its digest.
    @abstractmethod
    def open_session(self, username: str, policy: SessionPolicy) -> str:
        """Start a session for an account and return its token; expired ones are pruned."""

    @abstractmethod
    def session_user(self, token: str, policy: SessionPolicy) -> User | None:
        """The enabled account a live session belongs to, marking it used; else None
        (an unknown, ended, idle or too old session, which is then removed)."""

    @abstractmethod
    def close_session(self, token: str) -> None:
        """End one session (logout); an unknown token is ignored."""
