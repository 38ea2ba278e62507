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
from .sqlite import SQLiteStore


def open_store(url: str) -> Store:
    """Open the store a configuration URL names (``sqlite:///path`` or a plain path)."""
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SQLiteStore(path)


__all__ = [
    "AuditEntry", "Feature", "FeaturePage", "Layer", "LayerVersion", "PublicMap", "SQLiteStore",
    "Store", "User", "open_store",
]
