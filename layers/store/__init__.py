"""Stores keep layers, features and accounts. ``open_store`` picks one from a URL."""

from .base import (
    AuditEntry,
    Feature,
    FeaturePage,
    Layer,
    LayerVersion,
    PublicMap,
    Store,
    User,
)
from .postgis import PostGISStore
from .sqlite import SQLiteStore


def open_store(url: str) -> Store:
    """Open the store a setting names: a PostgreSQL URL or DSN (``postgresql://…``,
    ``host=… dbname=…``) for PostGIS, else an SQLite file (``sqlite:///path`` or a path)."""
    if url.startswith(("postgresql://", "postgres://")) or "dbname=" in url:
        return PostGISStore(url)
    return SQLiteStore(url.removeprefix("sqlite:///"))


__all__ = [
    "AuditEntry", "Feature", "FeaturePage", "Layer", "LayerVersion", "PostGISStore",
    "PublicMap", "SQLiteStore", "Store", "User", "open_store",
]
