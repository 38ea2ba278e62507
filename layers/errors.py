"""Typed errors raised by the core; the web layer maps each class to one HTTP status.

Their message is a :class:`layers.messages.Message`: English as ``str(exc)`` for notebooks
and the CLI, translated by the web face.
"""


class GisError(Exception):
    """Base class: every error the core raises on purpose carries a user-facing message.

    ``message`` is a Message (a plain ``str`` only from code outside ``layers/``).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LayerNotFound(GisError):
    """No layer has the requested slug."""


class FeatureNotFound(GisError):
    """No feature has the requested id in that layer."""


class LayerExists(GisError):
    """A layer with that slug already exists."""


class InvalidQuery(GisError):
    """A query parameter (bbox, limit, filter value…) is malformed or not allowed."""


class InvalidFeature(GisError):
    """A feature's geometry or properties do not fit its layer."""


class VersionConflict(GisError):
    """An edit was based on a version of the feature that is no longer current."""

    def __init__(self, message: str, current: dict | None = None) -> None:
        super().__init__(message)
        self.current = current


class UserExists(GisError):
    """An account with that username already exists."""


class UserNotFound(GisError):
    """No account has that username."""


class InvalidUpload(GisError):
    """An uploaded file cannot be read safely or correctly (bad archive, format, encoding…)."""
