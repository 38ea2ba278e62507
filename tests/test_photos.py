"""Photo uploads: only real JPEG/PNG get through, upright, bounded, and with no metadata left."""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import zlib

import pytest
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from layers.errors import InvalidUpload
from layers.photos import MAX_PHOTO_BYTES, Photo, sanitise_photo

GPS_IFD = 0x8825
MODEL = "SecretCam 3000"
PRIVATE_NAME = "Nguyen Van A"
COMMENT = b"taken at Mrs Lan's house, 12 Phu Rieng Do"
# JPEG segments a clean re-encode may contain: JFIF APP0, DQT, SOF0/1/2, DHT, DRI.
CLEAN_JPEG_MARKERS = {0xE0, 0xDB, 0xC0, 0xC1, 0xC2, 0xC4, 0xDD}
CLEAN_PNG_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def noisy(size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Incompressible pixels, so truncating the file really cuts image data."""
    bands = len(Image.new(mode, (1, 1)).getbands())
    return Image.frombytes(mode, size, random.Random(seed).randbytes(size[0] * size[1] * bands))


def halves(size: tuple[int, int]) -> Image.Image:
    """Left half red, right half blue: shows which way a photo was turned."""
    im = Image.new("RGB", size, "red")
    im.paste("blue", (size[0] // 2, 0, size[0], size[1]))
    return im


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = MODEL  # Model
    exif[0x0132] = "2024:05:01 09:30:00"  # DateTime
    exif[0x0112] = orientation
    exif[GPS_IFD] = {1: "N", 2: (11.0, 32.0, 10.5), 3: "E", 4: (106.0, 54.0, 3.2)}
    return exif


def jpeg_markers(data: bytes) -> set[int]:
    """Markers of the header segments, up to the start of the scan."""
    markers, pos = set(), 2
    while data[pos] == 0xFF and data[pos + 1] != 0xDA:
        markers.add(data[pos + 1])
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return markers


def png_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return chunks


def patch_png_size(png: bytes, width: int, height: int) -> bytes:
    """Make a tiny PNG declare a huge size, with a valid IHDR CRC, like a real bomb."""
    ihdr = png[12:16] + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def patch_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9 :]


def test_jpeg_gps_camera_xmp_comment_and_icc_are_stripped() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = f"<x:xmpmeta><dc:creator>{PRIVATE_NAME}</dc:creator></x:xmpmeta>".encode()
    raw = encode(
        halves((64, 48)), "JPEG", exif=camera_exif(), comment=COMMENT, xmp=xmp, icc_profile=icc
    )
    with Image.open(io.BytesIO(raw)) as original:  # the fixture really carries it all
        assert original.getexif().get_ifd(GPS_IFD)
        assert {"exif", "xmp", "comment", "icc_profile"} <= original.info.keys()

    photo = sanitise_photo(raw)

    assert (photo.mime, photo.width, photo.height) == ("image/jpeg", 64, 48)
    with Image.open(io.BytesIO(photo.data)) as clean:
        assert clean.format == "JPEG"
        assert len(clean.getexif()) == 0
        assert not clean.getexif().get_ifd(GPS_IFD)
        assert not {"exif", "xmp", "comment", "icc_profile"} & clean.info.keys()
    for secret in (b"Exif\x00\x00", MODEL.encode(), b"Canon", PRIVATE_NAME.encode(), COMMENT):
        assert secret not in photo.data
    assert jpeg_markers(photo.data) <= CLEAN_JPEG_MARKERS


def test_orientation_is_applied_before_exif_is_dropped() -> None:
    raw = encode(halves((40, 20)), "JPEG", exif=camera_exif(orientation=6))
    photo = sanitise_photo(raw)
    assert (photo.width, photo.height) == (20, 40)
    with Image.open(io.BytesIO(photo.data)) as clean, Image.open(io.BytesIO(raw)) as original:
        expected = ImageOps.exif_transpose(original)
        for xy in [(10, 5), (10, 35)]:
            got, want = clean.getpixel(xy), expected.getpixel(xy)
            assert all(abs(g - w) < 40 for g, w in zip(got, want, strict=True))
        assert clean.getpixel((10, 5))[0] > 200  # the left (red) edge is now on top


def test_rotated_photo_is_downscaled_to_max_side() -> None:
    raw = encode(halves((4000, 2000)), "JPEG", exif=camera_exif(orientation=6))
    photo = sanitise_photo(raw, max_side=500)
    assert (photo.width, photo.height) == (250, 500)


def test_large_photo_is_downscaled_small_one_is_not_enlarged() -> None:
    photo = sanitise_photo(encode(halves((3000, 1500)), "JPEG"))
    assert (photo.width, photo.height) == (2560, 1280)
    with Image.open(io.BytesIO(photo.data)) as clean:
        assert clean.size == (2560, 1280)
    small = sanitise_photo(encode(halves((300, 200)), "PNG"))
    assert (small.width, small.height) == (300, 200)


def test_png_text_and_exif_are_stripped_and_alpha_kept() -> None:
    im = noisy((32, 16), "RGBA")
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", PRIVATE_NAME)
    info.add_text("Comment", "GPS 11.53N 106.90E", zip=True)
    info.add_itxt("Description", "nhà bà Lan")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    raw = encode(im, "PNG", pnginfo=info, exif=camera_exif(), icc_profile=icc)
    assert b"tEXt" in raw and b"zTXt" in raw and b"iTXt" in raw and b"eXIf" in raw
    assert b"iCCP" in raw

    photo = sanitise_photo(raw)

    assert photo.mime == "image/png"
    assert set(png_chunks(photo.data)) <= CLEAN_PNG_CHUNKS
    for secret in (PRIVATE_NAME.encode(), b"Author", b"GPS", MODEL.encode()):
        assert secret not in photo.data
    with Image.open(io.BytesIO(photo.data)) as clean:
        assert clean.mode == "RGBA"
        assert not {"Author", "icc_profile", "exif"} & clean.info.keys()
        assert len(clean.getexif()) == 0
        assert clean.tobytes() == im.tobytes()  # PNG is lossless: same pixels, alpha included


def test_format_is_decided_by_content_not_by_name() -> None:
    """A PNG saved as photo.jpg is still a PNG: the caller must use Photo.mime."""
    assert sanitise_photo(encode(halves((8, 8)), "PNG")).mime == "image/png"
    assert sanitise_photo(encode(halves((8, 8)), "JPEG")).mime == "image/jpeg"


@pytest.mark.parametrize(
    ("mode", "fmt", "expected"),
    [
        ("CMYK", "JPEG", "RGB"),
        ("L", "JPEG", "L"),
        ("LA", "PNG", "LA"),
        ("P", "PNG", "RGB"),
        ("1", "PNG", "L"),
    ],
)
def test_modes_are_converted_sensibly(mode: str, fmt: str, expected: str) -> None:
    photo = sanitise_photo(encode(noisy((16, 16), "RGB").convert(mode), fmt))
    with Image.open(io.BytesIO(photo.data)) as clean:
        assert clean.mode == expected


def test_palette_transparency_becomes_alpha() -> None:
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 255, 0, 0])
    im.putpixel((0, 0), 0)
    photo = sanitise_photo(encode(im, "PNG", transparency=0))
    with Image.open(io.BytesIO(photo.data)) as clean:
        assert clean.mode == "RGBA"
        assert clean.getpixel((0, 0))[3] == 0 and clean.getpixel((1, 1)) == (255, 0, 0, 255)


def test_16_bit_grey_png_is_scaled_not_clipped() -> None:
    im = Image.new("I;16", (2, 1))
    im.putpixel((0, 0), 65535)
    im.putpixel((1, 0), 32896)
    photo = sanitise_photo(encode(im, "PNG"))
    with Image.open(io.BytesIO(photo.data)) as clean:
        assert clean.mode == "L" and clean.tobytes() == bytes([255, 128])


def test_multi_picture_jpeg_keeps_only_the_first_picture() -> None:
    raw = encode(halves((32, 32)), "MPO", save_all=True, append_images=[halves((16, 16))])
    photo = sanitise_photo(raw)
    assert (photo.mime, photo.width) == ("image/jpeg", 32)
    assert jpeg_markers(photo.data) <= CLEAN_JPEG_MARKERS  # no APP2 MPF index
    assert photo.data.count(b"\xff\xd8") == 1


def test_payload_appended_to_a_jpeg_is_dropped() -> None:
    payload = b"PK\x03\x04<script>alert(document.cookie)</script>"
    photo = sanitise_photo(encode(halves((16, 16)), "JPEG") + payload)
    assert b"PK\x03\x04" not in photo.data and b"<script>" not in photo.data


def _bad_png_checksum() -> bytes:
    raw = bytearray(encode(halves((8, 8)), "PNG"))
    raw[raw.index(b"IEND") - 5] ^= 0xFF  # last byte of the IDAT CRC
    return bytes(raw)


def _truncated(fmt: str) -> bytes:
    raw = encode(noisy((128, 128)), fmt)
    return raw[: len(raw) // 2]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "empty"),
        (encode(halves((8, 8)), "GIF"), "not a JPEG or PNG"),
        (encode(halves((8, 8)), "WEBP"), "not a JPEG or PNG"),
        (encode(halves((8, 8)), "TIFF"), "not a JPEG or PNG"),
        (encode(halves((8, 8)), "BMP"), "not a JPEG or PNG"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "not a JPEG or PNG",
        ),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "not a JPEG or PNG"),
        (b"<html>" + encode(halves((8, 8)), "JPEG"), "not a JPEG or PNG"),
        (random.Random(1).randbytes(4096), "not a JPEG or PNG"),
        (b"\xff\xd8\xff" + random.Random(2).randbytes(4096), "damaged"),
        (b"\x89PNG\r\n\x1a\n" + random.Random(3).randbytes(4096), "damaged"),
        (_truncated("JPEG"), "damaged"),
        (_truncated("PNG"), "damaged"),
        (_bad_png_checksum(), "damaged"),
    ],
    ids=[
        "empty",
        "gif",
        "webp",
        "tiff",
        "bmp",
        "svg",
        "html",
        "html-jpeg-polyglot",
        "random",
        "jpeg-magic-garbage",
        "png-magic-garbage",
        "truncated-jpeg",
        "truncated-png",
        "png-bad-checksum",
    ],
)
def test_refusals(raw: bytes, expected: str) -> None:
    with pytest.raises(InvalidUpload, match=expected) as info:
        sanitise_photo(raw)
    assert info.value.message.endswith(("again.", "try again."))  # says what to do


def test_oversized_bytes_are_refused_before_decoding() -> None:
    raw = encode(noisy((64, 64)), "JPEG")
    with pytest.raises(InvalidUpload, match="larger than the"):
        sanitise_photo(raw, max_bytes=len(raw) - 1)
    assert sanitise_photo(raw, max_bytes=len(raw)).width == 64
    with pytest.raises(InvalidUpload, match="larger than the 8 MB limit"):
        sanitise_photo(b"\xff\xd8\xff" + bytes(MAX_PHOTO_BYTES))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (patch_png_size(encode(Image.new("L", (1, 1)), "PNG"), 50_000, 50_000), "huge image"),
        (patch_png_size(encode(Image.new("L", (1, 1)), "PNG"), 8_000, 6_000), "8000x6000 pixels"),
        (patch_jpeg_size(encode(Image.new("L", (8, 8)), "JPEG"), 60_000, 60_000), "huge image"),
        (patch_jpeg_size(encode(Image.new("L", (8, 8)), "JPEG"), 7_000, 6_000), "7000x6000"),
    ],
    ids=["png-pillow-limit", "png-our-limit", "jpeg-pillow-limit", "jpeg-our-limit"],
)
def test_decompression_bombs_are_refused_before_decoding(raw: bytes, expected: str) -> None:
    with pytest.raises(InvalidUpload, match=f"too large to process: .*{expected}.*40-megapixel"):
        sanitise_photo(raw)


def test_photo_is_immutable() -> None:
    photo = sanitise_photo(encode(halves((8, 8)), "PNG"))
    assert isinstance(photo, Photo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        photo.data = b""  # type: ignore[misc]
