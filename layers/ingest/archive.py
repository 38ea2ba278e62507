"""Uploads are hostile until proven otherwise: trust the bytes, not the name; never extract.

Zips are vetted member by member (slip, links, bombs, nesting, passwords, damage), then read
in place by GDAL through ``/vsizip/``, so nothing an archive names is ever written to disk."""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from layers.errors import InvalidUpload
from layers.messages import Message

MIB = 1 << 20
HEAD = 64 * 1024  # enough of a file to recognise it
RATIO_FLOOR = MIB  # tiny files compress absurdly well: ratios only matter above this size
MEMBER_FORMATS = {".shp": "shapefile", ".gpkg": "gpkg", ".geojson": "geojson",
                  ".json": "geojson", ".kml": "kml", ".csv": "csv"}
EXTENSIONS = {**MEMBER_FORMATS, ".shp": "shp", ".zip": "zip", ".kmz": "zip"}  # of a whole upload
NESTED = (".zip", ".kmz", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2", ".xz")
SIDECARS = (".prj", ".cpg", ".dbf", ".shx")
LABELS = {"zip": Message("zip archive"), "gpkg": Message("GeoPackage"),
          "geojson": Message("GeoJSON file"), "kml": Message("KML file"),
          "csv": Message("CSV text file"), "shp": Message("shapefile (.shp)"),
          "shapefile": Message("shapefile (.shp)")}
ACCEPTED = Message("a zipped shapefile (.zip), a GeoPackage (.gpkg), GeoJSON, KML/KMZ or CSV")
GEOJSON = re.compile(r'"type"\s*:\s*"(?:FeatureCollection|Feature)"|"features"\s*:\s*\[')
KML = re.compile(r"<(?:\w+:)?kml[\s>/]")


def damaged(name: str) -> InvalidUpload:
    """The refusal of an archive that cannot be read to its end."""
    return InvalidUpload(Message("{name}: the archive is damaged or incomplete. Upload it again, "
                                 "or ask for a new zip.", name=name))


@dataclass(frozen=True)
class UploadLimits:
    """Caps that keep one upload from exhausting disk, memory or CPU."""

    max_upload_bytes: int = 200 * 1024 * 1024
    max_members: int = 2000
    max_uncompressed_bytes: int = 2 * 1024**3
    max_ratio: float = 200.0  # uncompressed / compressed, per member and overall


@dataclass(frozen=True)
class Dataset:
    """One readable dataset of an upload, addressed the way pyogrio/GDAL wants it."""

    path: str  # a plain file path, or "/vsizip/<abs zip path>/<member>"
    name: str  # human name: member path inside the archive, or the uploaded file name
    format: str  # "shapefile" | "gpkg" | "geojson" | "kml" | "csv"
    sidecars: tuple[str, ...] = ()  # shapefiles: which of .prj .cpg .dbf .shx are present
    layer: str | None = None  # the layer inside a multi-layer source (GeoPackage)


def _size(n: float) -> str:
    """A size a planner can read ("48.8 KB", "200 MB", "2 GB")."""
    unit, scale = ("GB", 1 << 30) if n >= 1 << 30 else ("MB", MIB) if n >= MIB else ("KB", 1024)
    return f"{n / scale:,.1f}".removesuffix(".0") + f" {unit}"


def _detect(head: bytes) -> str | None:
    """The format of a file from its first bytes, or None if it is none we read."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"SQLite format 3\x00"):
        return "gpkg"
    if head.startswith(b"\x00\x00\x27\x0a"):
        return "shp"
    if b"\x00" in head:
        return None
    # Decoding errors are tolerated: a CSV may well be in Windows-1258, not UTF-8.
    text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace").lstrip()
    if text.startswith("{"):
        return "geojson" if GEOJSON.search(text) else None
    if text.startswith("<"):
        return "kml" if KML.search(text) else None
    first = text.partition("\n")[0].strip()
    return "csv" if first and not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", first) else None


def sniff_format(path: Path, name: str | None = None) -> str:
    """The real format of ``path`` from its first bytes; the extension of ``name`` (default:
    the file's own) must agree, since a renamed file is a mistake or an attack."""
    name = name or Path(path).name
    with open(path, "rb") as file:
        found = _detect(file.read(HEAD))
    ext = posixpath.splitext(name.replace("\\", "/"))[1].lower()
    expected = EXTENSIONS.get(ext) if ext else found
    if ext and expected is None:
        raise InvalidUpload(Message("{name} is not a file type we accept. Upload {accepted}.",
                                    name=name, accepted=ACCEPTED))
    if found is None:
        raise InvalidUpload(Message(
            "{name} is not a {format}: its content is not recognised (damaged, or the wrong "
            "extension?).", name=name,
            format=LABELS.get(expected or "", Message("map file we read"))))
    if found != expected:
        raise InvalidUpload(Message(
            "{name} has the wrong extension: it is named {ext} but it is really a {found}, not "
            "a {expected}. Check the file.", name=name, ext=ext, found=LABELS[found],
            expected=LABELS[expected]))
    return found


def open_upload(path: Path, original_name: str, limits: UploadLimits = UploadLimits()
                ) -> list[Dataset]:
    """Prove an upload safe to hand to GDAL, then list the datasets it holds."""
    size = os.stat(path).st_size
    if size > limits.max_upload_bytes:
        raise InvalidUpload(Message(
            "{name} is {size}; uploads are limited to {limit}. Split the data into smaller "
            "files.", name=original_name, size=_size(size), limit=_size(limits.max_upload_bytes)))
    if size == 0:
        raise InvalidUpload(Message("{name} is empty. Check the file and upload it again.",
                                    name=original_name))
    found = sniff_format(path, original_name)
    if found == "shp":
        raise InvalidUpload(Message(
            "{name} is a .shp on its own: shapefiles need .shp, .shx and .dbf together (and "
            ".prj). Put them in one .zip and upload that.", name=original_name))
    if found != "zip":
        target = os.path.abspath(path)
        if found == "csv" and not target.lower().endswith(".csv"):
            target = "CSV:" + target  # GDAL only recognises CSV by its extension
        return [Dataset(target, original_name, found)]
    datasets = _open_zip(Path(path), original_name, size, limits)
    if not datasets:
        kmz = original_name.lower().endswith(".kmz")
        raise InvalidUpload(Message(
            "{name} contains no {what} we can read. Upload {accepted} (a shapefile needs .shp, "
            ".shx and .dbf).", name=original_name, accepted=ACCEPTED,
            what=Message(".kml file") if kmz else Message("map layer")))
    return datasets


def _bomb(shown: str, detail: str) -> InvalidUpload:
    return InvalidUpload(Message(
        "{name} looks like a zip bomb: {detail}. It was refused to protect the server; if the "
        "data is genuine, split it into smaller uploads.", name=shown, detail=detail))


def _normalise(name: str) -> str:
    """A member name as GDAL's /vsizip/ sees it: forward slashes, one leading "./" dropped."""
    return name.replace("\\", "/").removeprefix("./")


def _display(info: zipfile.ZipInfo) -> str:
    """The member name for people: unflagged UTF-8 names come out of zipfile/GDAL as CP437."""
    name = info.filename
    if not info.flag_bits & 0x800 and not name.isascii():
        with contextlib.suppress(UnicodeError):
            name = name.encode("cp437").decode("utf-8")
    return _normalise(name)


def _check_member(info: zipfile.ZipInfo, shown: str, limits: UploadLimits) -> bool:
    """Refuse a hostile member; True if it may hold data (not a folder or Mac debris)."""
    raw = info.filename
    parts = _normalise(raw).removesuffix("/").split("/")  # "", "." parts: absolute or odd
    if re.match(r"[A-Za-z]:", raw) or {"..", ".", ""} & set(parts):
        raise InvalidUpload(Message(
            "{name} contains an unsafe file name ({member!r}) that could point outside the "
            "archive, a trick of malicious zips. Re-create the zip.", name=shown, member=raw))
    if stat.S_ISLNK(info.external_attr >> 16):
        raise InvalidUpload(Message(
            "{name} contains a symbolic link ({member!r}). Links are not accepted: zip the real "
            "files instead.", name=shown, member=raw))
    if raw.endswith(("/", "\\")) or parts[0] == "__MACOSX" or parts[-1].startswith("._"):
        return False
    if info.flag_bits & 0x1:
        raise InvalidUpload(Message(
            "{name} is password-protected ({member!r} is encrypted). Upload an archive without "
            "a password.", name=shown, member=raw))
    if raw.lower().endswith(NESTED):
        raise InvalidUpload(Message(
            "{name} contains another archive ({member!r}). Archives inside archives are not "
            "accepted: unzip it and upload them separately.", name=shown, member=raw))
    _check_size(shown, _display(info), info.file_size, info.compress_size, 0, limits)
    return True


def _check_size(shown: str, what: str, size: int, packed: int, before: int,
                limits: UploadLimits) -> None:
    """Refuse a member (or a whole archive) that unpacks too big or too suspiciously well."""
    if before + size > limits.max_uncompressed_bytes:
        raise _bomb(shown, Message("{what} would unpack to more than the {limit} limit",
                                   what=what, limit=_size(limits.max_uncompressed_bytes)))
    if size > RATIO_FLOOR and size > limits.max_ratio * max(packed, 1):
        raise _bomb(shown, Message("{what} unpacks from {packed} to {size}, {ratio:,.0f} times "
                                   "its size", what=what, packed=_size(packed), size=_size(size),
                                   ratio=size / max(packed, 1)))


def _check_overlap(infos: list[zipfile.ZipInfo], shown: str) -> None:
    """Refuse members that share compressed bytes: the "overlapping files" zip bomb."""
    spans = sorted((i.header_offset, i.header_offset + 30 + i.compress_size) for i in infos)
    if any(start < end for (_, end), (start, _) in zip(spans, spans[1:], strict=False)):
        raise _bomb(shown, Message("several files share the same compressed data"))


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str, before: int,
            archive_size: int, limits: UploadLimits) -> tuple[bytes, int]:
    """Decompress a member to count its real size (headers lie) and check its CRC."""
    head, size = b"", 0
    with zf.open(info) as member:
        while chunk := member.read(MIB):
            head, size = head or chunk[: HEAD // 8], size + len(chunk)  # 2000 x 8 KB at most
            _check_size(shown, _display(info), size, info.compress_size, before, limits)
            _check_size(shown, Message("the archive"), before + size, archive_size, 0, limits)
    return head, size


def _open_zip(path: Path, shown: str, size: int, limits: UploadLimits) -> list[Dataset]:
    """Vet every member of a zip without extracting it, then list its datasets."""
    members: dict[str, tuple[str, bytes]] = {}  # GDAL name -> (display name, first bytes)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > limits.max_members:
                raise InvalidUpload(Message(
                    "{name} contains too many files ({count:,}, limit {limit:,}). Split it "
                    "into smaller zips.", name=shown, count=len(infos), limit=limits.max_members))
            data = [info for info in infos if _check_member(info, shown, limits)]
            _check_size(shown, Message("the archive"), sum(i.file_size for i in data), size, 0,
                        limits)
            _check_overlap(infos, shown)
            total = 0
            for info in data:
                name = _normalise(info.filename)
                if name in members:
                    raise InvalidUpload(Message(
                        "{name} contains {member!r} twice. Re-create the zip so that each file "
                        "appears once.", name=shown, member=name))
                head, real = _stream(zf, info, shown, total, size, limits)
                members[name] = (_display(info), head)
                total += real
    except NotImplementedError as exc:
        raise InvalidUpload(Message(
            "{name} uses a compression method we cannot read. Re-create it as a standard zip "
            "(e.g. Windows 'Compressed folder').", name=shown)) from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        raise damaged(shown) from exc
    return _datasets(path, shown, members)


def _vsizip(archive: Path) -> str:
    """The /vsizip/ prefix; braces when GDAL could not tell where the archive path ends."""
    absolute = os.path.abspath(archive)
    lower = absolute.lower()
    if lower.endswith((".zip", ".kmz")) and not re.search(r"\.(zip|kmz)/", lower):
        return f"/vsizip/{absolute}/"
    return f"/vsizip/{{{absolute}}}/"


def _sidecar(names: dict[str, object], stem: str, suffix: str) -> str | None:
    """A shapefile's sidecar as GDAL finds it: same stem, extension all lower or upper case."""
    return next((n for n in (stem + suffix, stem + suffix.upper()) if n in names), None)


def _datasets(path: Path, shown: str, members: dict[str, tuple[str, bytes]]) -> list[Dataset]:
    """The datasets of a vetted archive, refusing shapefiles with missing parts."""
    base, out = _vsizip(path), []
    lowered = {name.lower(): display for name, (display, _) in members.items()}
    for name, (display, head) in members.items():
        stem, ext = posixpath.splitext(name)
        fmt = MEMBER_FORMATS.get(ext.lower())
        if fmt is None:
            continue
        if fmt == "shapefile" and ext not in (".shp", ".SHP"):  # GDAL would not find its parts
            raise InvalidUpload(Message(
                "{member} inside {name}: rename it with .shp or .SHP (and its .shx, .dbf, .prj "
                "the same way) so that GIS software finds them.", member=display, name=shown))
        if _detect(head) != ("shp" if fmt == "shapefile" else fmt):
            if ext.lower() == ".json":
                continue  # plain JSON (metadata, styles) rather than a layer
            raise InvalidUpload(Message(
                "{member} inside {name} is not a {format}: it has the wrong extension or is "
                "damaged. Remove or replace it.", member=display, name=shown,
                format=LABELS[fmt]))
        sidecars: tuple[str, ...] = ()
        if fmt == "shapefile":
            found = {s: _sidecar(members, stem, s) for s in SIDECARS}
            for need in (".shx", ".dbf"):
                if found[need] is None:
                    wanted = posixpath.basename(stem) + (need.upper() if ext.isupper() else need)
                    near = lowered.get((stem + need).lower())
                    if near:
                        raise InvalidUpload(Message(
                            "{member} has no {wanted}: shapefiles need .shp, .shx and .dbf "
                            "together. Add it to the zip. ({near} is there: rename it to "
                            "exactly {wanted}.)", member=display, wanted=wanted, near=near))
                    raise InvalidUpload(Message(
                        "{member} has no {wanted}: shapefiles need .shp, .shx and .dbf "
                        "together. Add it to the zip.", member=display, wanted=wanted))
            sidecars = tuple(s for s in SIDECARS if found[s])
        out.append(Dataset(base + name, display, fmt, sidecars))
    return out


@contextlib.contextmanager
def _open_member(dataset: Dataset, suffix: str) -> Iterator[tuple[BinaryIO, int] | None]:
    """A dataset's own file or sidecar, in the zip or beside the file, opened with its size;
    None if absent."""
    path = dataset.path.removeprefix("CSV:")
    if not path.startswith("/vsizip/"):
        stem = os.path.splitext(path)[0]
        for candidate in (stem + suffix.lower(), stem + suffix.upper()):
            if os.path.isfile(candidate):
                with open(candidate, "rb") as file:
                    yield file, os.fstat(file.fileno()).st_size
                return
        yield None
        return
    rest = path.removeprefix("/vsizip/")  # undo _vsizip: braces, or the first .zip/ .kmz/
    if rest.startswith("{"):
        archive, _, member = rest[1:].partition("}/")
    else:
        end = re.search(r"\.(zip|kmz)/", rest, re.IGNORECASE)
        archive, member = (rest[: end.end() - 1], rest[end.end() :]) if end else (rest, "")
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = {_normalise(i.filename): i for i in zf.infolist()}
            name = _sidecar(infos, posixpath.splitext(member)[0], suffix.lower())
            if name is None:
                yield None
                return
            with zf.open(infos[name]) as file:
                yield file, infos[name].file_size
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        raise damaged(dataset.name) from exc


def read_member_bytes(dataset: Dataset, suffix: str, limit: int = 1 << 20) -> bytes | None:
    """A small sidecar (".prj", ".cpg") in the zip or beside the file, None if absent; at most
    ``limit`` bytes, since it is untrusted input too."""
    with _open_member(dataset, suffix) as member:
        return None if member is None else member[0].read(limit)


def member_size(dataset: Dataset, suffix: str) -> int | None:
    """How many bytes a dataset's file or sidecar holds, without reading it; None if absent."""
    with _open_member(dataset, suffix) as member:
        return None if member is None else member[1]
