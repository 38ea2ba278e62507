"""Photo uploads: accept only real JPEG/PNG images and strip every piece of metadata.

Inspectors attach photos to hotspot inspections and citizens attach them to reports.
Such files are untrusted: EXIF GPS tags, camera serials, XMP authors and comments can
reveal where private people live or who they are, and crafted files can exhaust memory
(decompression bombs) or smuggle other content (polyglots). Every accepted photo is
therefore decoded within pixel limits and re-encoded from bare pixel data, so nothing
but the picture itself can survive.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps

from layers.errors import InvalidUpload
from layers.messages import Message

MAX_PHOTO_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000

# Decide the format from the content only: file names and Content-Type headers are untrusted.
_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_RESIZABLE = {"L", "LA", "RGB", "RGBA", "CMYK"}

_NOT_PHOTO = Message(
    "This file is not a JPEG or PNG photo. Only JPEG (.jpg) and PNG (.png) images are "
    "accepted; save or export the photo in one of these formats and upload it again."
)
_DAMAGED = Message(
    "The photo could not be read: the file is damaged or incomplete. Check that it opens "
    "on your device, then upload it again."
)


def _too_many_pixels(size: str, limit: str) -> InvalidUpload:
    return InvalidUpload(Message(
        "The photo is too large to process: {size}, more than the {limit}-megapixel limit. "
        "Reduce its resolution and upload it again.", size=size, limit=limit))


@dataclass(frozen=True)
class Photo:
    """A sanitised photo, safe to store and serve: re-encoded and free of metadata."""

    data: bytes  # the sanitised image, re-encoded
    mime: str  # "image/jpeg" | "image/png"
    width: int
    height: int


def sanitise_photo(raw: bytes, *, max_bytes: int = MAX_PHOTO_BYTES, max_side: int = 2560) -> Photo:
    """Validate an uploaded JPEG/PNG and return it upright, downscaled and metadata-free.

    Raises ``InvalidUpload`` for empty, oversized, non-JPEG/PNG, bomb or damaged files.
    """
    if max_side < 1:
        raise ValueError("max_side must be a positive number of pixels")
    if not raw:
        raise InvalidUpload(
            Message("The photo file is empty. Choose a JPEG or PNG photo and try again."))
    if len(raw) > max_bytes:
        raise InvalidUpload(Message(
            "The photo is {size} MB, larger than the {limit} MB limit. Reduce its size or "
            "resolution and upload it again.", size=_mb(len(raw)), limit=_mb(max_bytes)))
    fmt = next((f for magic, f in _MAGIC.items() if raw.startswith(magic)), None)
    if fmt is None:
        raise InvalidUpload(_NOT_PHOTO)
    try:
        im = _open(raw, fmt)
        if im.mode not in _RESIZABLE:  # palette, 1-bit, 16-bit: resizing them needs 8-bit
            im = _final_mode(im, fmt)
        im.thumbnail((max_side, max_side))  # longest side <= max_side, in either orientation
        im = ImageOps.exif_transpose(im)  # turn upright before the orientation tag is dropped
        im = _final_mode(_to_srgb(im), fmt)
        # A fresh image built from raw pixels has no info dict: no EXIF, XMP, ICC, text, comment.
        clean = Image.frombytes(im.mode, im.size, im.tobytes())
        out = io.BytesIO()
        if fmt == "JPEG":
            clean.save(out, "JPEG", quality=85, progressive=True, optimize=True)
        else:
            clean.save(out, "PNG", optimize=True)
    except InvalidUpload:
        raise
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(Message("it declares a huge image size"),
                               _mp(MAX_PIXELS)) from exc
    except Exception as exc:  # decoders raise many types (OSError, SyntaxError, struct.error…)
        raise InvalidUpload(_DAMAGED) from exc
    return Photo(out.getvalue(), _MIME[fmt], clean.width, clean.height)


def _open(raw: bytes, fmt: str) -> Image.Image:
    """Open lazily, refuse bombs before any pixel is decoded, and verify the structure."""
    with Image.open(io.BytesIO(raw), formats=[fmt]) as probe:
        width, height = probe.size
        if width * height > MAX_PIXELS:
            raise _too_many_pixels(Message("{width}x{height} pixels", width=width, height=height),
                                   _mp(MAX_PIXELS))
        probe.verify()  # PNG: chunk CRCs up to IEND; a verified image must be reopened
    return Image.open(io.BytesIO(raw), formats=[fmt])


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert pixels to sRGB so dropping the ICC profile (it can carry text) keeps colours."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in {"RGB", "RGBA", "CMYK"}:
        return im
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if im.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(im, source, _SRGB, outputMode=mode) or im
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im  # broken or mismatched profile: keep the pixels as they are, as viewers do


def _final_mode(im: Image.Image, fmt: str) -> Image.Image:
    """8-bit L/RGB for JPEG; L/LA/RGB/RGBA for PNG so transparency survives."""
    if im.mode.startswith("I"):  # 16-bit grey: scale to 8 bits instead of clipping at 255
        im = im.convert("I").point(lambda v: v / 257).convert("L")
    alpha = fmt == "PNG" and (im.mode in {"LA", "PA", "RGBA"} or "transparency" in im.info)
    target = ("L" if im.mode in {"1", "L", "LA"} else "RGB") + ("A" if alpha else "")
    return im if im.mode == target else im.convert(target)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f}".removesuffix(".0")


def _mp(n: int) -> str:
    return f"{n / 1_000_000:g}"
