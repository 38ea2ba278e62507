"""Uploaded files waiting between preview and publish, one private folder per upload.

The file is saved under a name we choose (the original name is kept only as text), in a
folder named by a random token and tied to the account that uploaded it.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from werkzeug.datastructures import FileStorage

from layers.errors import InvalidUpload

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
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
        raise InvalidUpload("Choose a file to upload")
    original = Path(storage.filename.replace("\\", "/")).name[:200]
    match = SUFFIX_RE.search(original.lower())
    token = secrets.token_urlsafe(24)
    folder = upload_root() / token
    folder.mkdir()
    path = folder / ("upload" + (match.group(0) if match else ""))
    storage.save(path)
    meta = {"original_name": original, "owner": owner, "file": path.name}
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return PendingUpload(token, path, original, owner)


def get_upload(token: str, owner: str) -> PendingUpload:
    """The pending upload of ``owner``; anything else is "not found"."""
    folder = upload_root() / token
    meta_file = folder / "meta.json"
    if not TOKEN_RE.match(token) or not meta_file.is_file():
        raise InvalidUpload("This upload is no longer available; upload the file again")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta["owner"] != owner:
        raise InvalidUpload("This upload is no longer available; upload the file again")
    return PendingUpload(token, folder / meta["file"], meta["original_name"], owner)


def discard_upload(upload: PendingUpload) -> None:
    shutil.rmtree(upload.path.parent, ignore_errors=True)
