"""Uploaded files waiting between preview and publish, one private folder per upload.

The file is saved under a name we choose (the original name is kept only as text), in a
folder named by a random token and tied to the account that uploaded it. Nothing stays
there for good: a published, discarded or unreadable upload is removed at once, and one
left waiting (a closed tab, a killed worker, a broken connection) expires after
``UPLOAD_MAX_AGE`` seconds without use, swept at each new upload and by
``gis-service uploads clean``.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from werkzeug.datastructures import FileStorage

from layers.errors import InvalidUpload
from layers.messages import Message
from layers.text import TITLE_MAX, nfc

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
GONE = Message("This upload is no longer available; upload the file again")
SUFFIX_RE = re.compile(r"\.[a-z0-9]{1,8}$")


@dataclass(frozen=True)
class PendingUpload:
    token: str
    path: Path
    original_name: str
    owner: str


def upload_root() -> Path:
    root = Path(current_app.config["UPLOAD_DIR"])
    root.mkdir(parents=True, exist_ok=True)
    return root


def save_upload(storage: FileStorage | None, owner: str) -> PendingUpload:
    """Keep an uploaded file for preview; the name it came with is only a label."""
    if storage is None or not storage.filename:
        raise InvalidUpload(Message("Choose a file to upload"))
    # Shown on pages and kept in notes: normalised like every stored text (no bidi controls).
    original = nfc(Path(storage.filename.replace("\\", "/")).name)[:TITLE_MAX]
    match = SUFFIX_RE.search(original.lower())
    sweep_uploads()
    token = secrets.token_urlsafe(24)
    folder = upload_root() / token
    folder.mkdir()
    path = folder / ("upload" + (match.group(0) if match else ""))
    try:
        storage.save(path)
        meta = {"original_name": original, "owner": owner, "file": path.name}
        (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False),
                                          encoding="utf-8")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a half-written upload is no upload
        raise
    return PendingUpload(token, path, original, owner)


def get_upload(token: str, owner: str) -> PendingUpload:
    """The pending upload of ``owner``; anything else is "not found"."""
    folder = upload_root() / token
    meta_file = folder / "meta.json"
    if not TOKEN_RE.match(token) or not meta_file.is_file():
        raise InvalidUpload(GONE)
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta["owner"] != owner:
        raise InvalidUpload(GONE)
    return PendingUpload(token, folder / meta["file"], meta["original_name"], owner)


def discard_upload(upload: PendingUpload) -> None:
    shutil.rmtree(upload.path.parent, ignore_errors=True)


def _last_use(folder: Path) -> float:
    """When an upload was last saved or previewed (each preview writes its map file)."""
    return max((p.stat().st_mtime for p in folder.iterdir()), default=folder.stat().st_mtime)


def sweep_uploads(max_age: float | None = None) -> int:
    """Remove uploads unused for ``max_age`` seconds (``UPLOAD_MAX_AGE`` by default); how
    many were removed. Only folders named like an upload token are touched."""
    age = float(current_app.config["UPLOAD_MAX_AGE"] if max_age is None else max_age)
    cutoff = time.time() - age
    removed = 0
    for folder in upload_root().iterdir():
        if not (TOKEN_RE.match(folder.name) and folder.is_dir()):
            continue
        try:
            stale = _last_use(folder) < cutoff
        except FileNotFoundError:  # removed meanwhile by another worker
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


uploads_group = AppGroup("uploads", help="Uploads waiting between preview and publish.")


@uploads_group.command("clean")
@click.option("--max-age", type=click.FloatRange(min=0), default=None,
              help="Remove uploads unused for this many seconds (default: UPLOAD_MAX_AGE).")
def clean_command(max_age: float | None) -> None:
    """Remove abandoned uploads (run it from cron, or rely on the sweep at each upload)."""
    removed = sweep_uploads(max_age)
    click.echo(f"Removed {removed} abandoned upload(s) from {upload_root()}")
