"""Tests of leitmotiv.imaging: decoding, metadata, and refusing bad files clearly."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BAD_DIR, read_csv
from PIL import Image

from leitmotiv import imaging
from leitmotiv.imaging import (
    IMAGE_EXTENSIONS,
    DecodedImage,
    DecodeError,
    decode,
    file_sha256,
    is_image_name,
    thumbnail_jpeg,
)

# Located like the conftest fixtures, but needed at collection time for parametrizing.


def _grey_small(rgb: np.ndarray, size: int = 32) -> np.ndarray:
    """Downscaled, standardized grey image for comparing scenes."""
    grey = np.asarray(Image.fromarray(rgb).convert("L").resize((size, size), Image.BILINEAR))
    grey = grey.astype(np.float64)
    return (grey - grey.mean()) / (grey.std() + 1e-9)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a * b))


def _save(tmp_path: Path, name: str, im: Image.Image, **kwargs) -> Path:
    path = tmp_path / name
    im.save(path, **kwargs)
    return path


# --- the bad-input corpus ---------------------------------------------------------


def _bad_cases() -> list[tuple[str, str]]:
    return [(row["file"], row["expected"]) for row in read_csv(BAD_DIR / "expected.csv")]


REASON_WORDS = (
    "empty",
    "not an image",
    "truncated",
    "corrupt",
    "too large",
    "permission",
    "not found",
    "broken link",
    "directory",
)


@pytest.mark.parametrize(("name", "expected"), _bad_cases())
def test_bad_corpus(bad_dir: Path, name: str, expected: str) -> None:
    path = bad_dir / name.rstrip("/")
    try:
        decoded = decode(path)
    except DecodeError as exc:
        assert expected in ("error", "either"), f"{name} should decode, got: {exc}"
        message = str(exc)
        assert path.name in message
        assert any(word in message for word in REASON_WORDS), message
        return
    assert expected in ("decode", "either"), f"{name} should have been refused"
    rgb = decoded.rgb
    assert isinstance(decoded, DecodedImage)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.flags.c_contiguous
    assert (decoded.height, decoded.width) == rgb.shape[:2]
    assert decoded.taken_source in ("exif", "mtime")
    if rgb.size > 3:
        assert rgb.std() > 5, "a photo should not come out flat"


def test_bad_corpus_colours_like_reference(bad_dir: Path) -> None:
    """CMYK, palette, TIFF, WebP, 16-bit versions look like the plain BMP."""
    reference = _grey_small(decode(bad_dir / "photo.bmp").rgb)
    for name in ("cmyk.jpg", "palette.png", "photo.tiff", "photo.webp", "rgb16.png"):
        decoded = decode(bad_dir / name)
        assert _corr(_grey_small(decoded.rgb), reference) > 0.9, name
    ref_mean = decode(bad_dir / "photo.bmp").rgb.reshape(-1, 3).mean(axis=0)
    cmyk_mean = decode(bad_dir / "cmyk.jpg").rgb.reshape(-1, 3).mean(axis=0)
    assert np.all(np.abs(ref_mean - cmyk_mean) < 25)


def test_rgb16_scaled_not_wrapped(bad_dir: Path) -> None:
    rgb = decode(bad_dir / "rgb16.png").rgb
    assert rgb.max() > 200
    # Wrapping 16-bit values into 8 bits would turn smooth areas into noise.
    steps = np.abs(np.diff(rgb.astype(np.int16), axis=1))
    assert np.median(steps) < 8


def test_grey16_ramp_scales_monotonically(tmp_path: Path) -> None:
    ramp = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    path = _save(tmp_path, "ramp16.png", Image.fromarray(ramp))
    rgb = decode(path).rgb
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[-1, -1].tolist() == [255, 255, 255]
    flat = rgb[..., 0].ravel().astype(np.int16)
    assert np.all(np.diff(flat) >= 0), "16-bit values must not wrap"
    assert np.all(rgb[..., 0] == rgb[..., 2])


def test_float_and_int32_grey(tmp_path: Path) -> None:
    values = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    path = _save(tmp_path, "float.tiff", Image.fromarray(values, "F"))
    rgb = decode(path).rgb
    assert rgb.min() == 0 and rgb.max() == 255
    ints = (np.arange(64 * 64, dtype=np.int32) * 16).reshape(64, 64)
    path = _save(tmp_path, "int32.tiff", Image.fromarray(ints, "I"))
    rgb = decode(path).rgb
    assert rgb.max() > 200 and np.all(np.diff(rgb[..., 0].ravel().astype(int)) >= 0)


def test_alpha_composited_on_grey(bad_dir: Path) -> None:
    path = bad_dir / "rgba_transparent.png"
    alpha = np.asarray(Image.open(path).getchannel("A"))
    assert (alpha == 0).any()
    rgb = decode(path).rgb
    assert np.all(rgb[alpha == 0] == imaging.ALPHA_BACKGROUND)
    opaque = np.asarray(Image.open(path).convert("RGB"))[alpha == 255]
    assert np.array_equal(rgb[alpha == 255], opaque)


@pytest.mark.parametrize("mode", ["LA", "PA", "P"])
def test_other_alpha_modes(tmp_path: Path, mode: str) -> None:
    # Left half opaque white, right half fully transparent (black underneath).
    alpha = Image.new("L", (8, 4), 0)
    alpha.paste(255, (0, 0, 4, 4))
    palette = Image.new("P", (8, 4), 0)
    palette.putpalette([255, 255, 255, 0, 0, 0])
    palette.paste(1, (4, 0, 8, 4))
    if mode == "LA":
        rgb = decode(_save(tmp_path, "la.png", Image.merge("LA", [palette.convert("L"), alpha])))
        rgb = rgb.rgb
    elif mode == "PA":  # no common file format stores PA: test the conversion itself
        im = palette.convert("PA")
        im.putalpha(alpha)
        rgb = imaging._to_rgb_array(im)
    else:
        rgb = decode(_save(tmp_path, "p.png", palette, transparency=1)).rgb
    assert np.all(rgb[:, :4] == 255)
    assert np.all(rgb[:, 4:] == imaging.ALPHA_BACKGROUND)


def test_animated_gif_first_frame(bad_dir: Path) -> None:
    path = bad_dir / "animated.gif"
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) > 1
        first = np.asarray(im.convert("RGB"))
    assert np.array_equal(decode(path).rgb, first)


# --- errors -------------------------------------------------------------------------


def test_bomb_refused_quickly_with_size(bad_dir: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(DecodeError) as info:
        decode(bad_dir / "bomb_60000x60000.png")
    assert time.perf_counter() - start < 1.0
    assert re.search(r"60000\s*[x×]\s*60000", str(info.value))
    assert "too large" in str(info.value)


def test_max_pixels_checked_on_header(bad_dir: Path) -> None:
    with pytest.raises(DecodeError, match=r"too large \(320×213 pixels, limit 1000"):
        decode(bad_dir / "photo.bmp", max_pixels=1000)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="file not found") as info:
        decode(tmp_path / "nope.jpg")
    assert "nope.jpg" in str(info.value)


def test_broken_link(tmp_path: Path) -> None:
    link = tmp_path / "dangling.jpg"
    link.symlink_to(tmp_path / "does_not_exist.jpg")
    with pytest.raises(DecodeError, match="broken link"):
        decode(link)


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(DecodeError, match="is a directory"):
        decode(folder)


def test_permission_denied_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root reads any file, so also simulate the refusal the OS would give.
    path = _save(tmp_path, "locked.png", Image.new("RGB", (4, 4)))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(imaging, "open", refuse, raising=False)
    with pytest.raises(DecodeError, match="permission denied") as info:
        decode(path)
    assert "locked.png" in str(info.value)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_permission_denied(tmp_path: Path) -> None:
    path = _save(tmp_path, "locked.png", Image.new("RGB", (4, 4)))
    path.chmod(0)
    try:
        with pytest.raises(DecodeError, match="permission denied"):
            decode(path)
    finally:
        path.chmod(0o644)


def test_truncated_png_refused(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DecodeError) as info:
        decode(path)
    assert "cut.png" in str(info.value)
    assert "truncated" in str(info.value) or "corrupt" in str(info.value)


def test_invalid_target_long_side(bad_dir: Path) -> None:
    with pytest.raises(ValueError, match="target_long_side"):
        decode(bad_dir / "photo.bmp", target_long_side=0)


# --- orientation, dates, reduced decoding ----------------------------------------------


def test_exif_orientation_upright(photos_dir: Path, groups_rows: list[dict[str, str]]) -> None:
    oriented = [r for r in groups_rows if r["orientation"]]
    assert sorted(r["orientation"] for r in oriented) == ["3", "6", "8"]
    for row in oriented:
        decoded = decode(photos_dir / row["file"])
        with Image.open(photos_dir / row["file"]) as raw:
            stored_w, stored_h = raw.size
        if row["orientation"] in ("6", "8"):
            assert (decoded.width, decoded.height) == (stored_h, stored_w)
        else:
            assert (decoded.width, decoded.height) == (stored_w, stored_h)
        assert decoded.rgb.shape[:2] == (decoded.height, decoded.width)
        siblings = [
            decode(photos_dir / r["file"]).rgb
            for r in groups_rows
            if r["group"] == row["group"] and not r["orientation"]
        ]
        # The upright result must match its siblings better than any other rotation.
        scores = []
        for k in range(4):
            candidate = _grey_small(np.ascontiguousarray(np.rot90(decoded.rgb, k)))
            scores.append(max(_corr(candidate, _grey_small(s)) for s in siblings))
        assert int(np.argmax(scores)) == 0, (row["file"], scores)


def test_exif_dates(photos_dir: Path, groups_rows: list[dict[str, str]]) -> None:
    n_exif = 0
    for row in groups_rows:
        decoded = decode(photos_dir / row["file"], target_long_side=64)
        if row["taken"]:
            n_exif += 1
            assert decoded.taken_source == "exif", row["file"]
            assert decoded.taken == dt.datetime.strptime(row["taken"], "%Y:%m:%d %H:%M:%S")
        else:
            assert decoded.taken_source == "mtime", row["file"]
            mtime = (photos_dir / row["file"]).stat().st_mtime
            assert decoded.taken == dt.datetime.fromtimestamp(mtime)
    assert n_exif > 10


def test_exif_offset_gives_aware_datetime(tmp_path: Path) -> None:
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2021:03:04 05:06:07"
    sub[0x9011] = "+02:00"
    sub[0x9291] = "25"
    path = _save(tmp_path, "dated.jpg", Image.new("RGB", (8, 8)), exif=exif.tobytes())
    decoded = decode(path)
    tz = dt.timezone(dt.timedelta(hours=2))
    assert decoded.taken == dt.datetime(2021, 3, 4, 5, 6, 7, 250000, tzinfo=tz)
    assert decoded.taken.utcoffset() == dt.timedelta(hours=2)
    assert decoded.taken_source == "exif"


def test_blank_exif_date_falls_back_to_mtime(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "    :  :     :  :  "
    path = _save(tmp_path, "blank.jpg", Image.new("RGB", (8, 8)), exif=exif.tobytes())
    assert decode(path).taken_source == "mtime"


def test_garbage_exif_keeps_pixels(bad_dir: Path) -> None:
    decoded = decode(bad_dir / "garbage_exif.jpg")
    assert decoded.taken_source == "mtime"
    assert decoded.rgb.shape == (213, 320, 3)


def test_jpeg_draft_decode(photos_dir: Path) -> None:
    path = photos_dir / "astronaut_0.jpg"
    full = decode(path)
    for target in (100, 200, 300):
        with Image.open(path) as im:
            imaging._jpeg_draft(im, target)
            im.load()
            drafted = max(im.size)
        assert target <= drafted < 2 * target, (target, drafted)
        reduced = decode(path, target_long_side=target)
        assert max(reduced.rgb.shape[:2]) == target
        assert (reduced.width, reduced.height) == (full.width, full.height)
        small = np.asarray(Image.fromarray(full.rgb).resize(reduced.rgb.shape[1::-1]))
        assert _corr(_grey_small(small), _grey_small(reduced.rgb)) > 0.95


def test_target_never_enlarges(bad_dir: Path) -> None:
    assert decode(bad_dir / "photo.bmp", target_long_side=5000).rgb.shape == (213, 320, 3)
    assert decode(bad_dir / "tall_3x2000.png", target_long_side=100).rgb.shape == (100, 1, 3)


def test_target_with_rotation(photos_dir: Path) -> None:
    decoded = decode(photos_dir / "hubble_deep_field_0.jpg", target_long_side=200)
    assert decoded.rgb.shape[1] == 200 and decoded.rgb.shape[0] in (174, 175)
    assert (decoded.width, decoded.height) == (320, 279)


# --- helpers -------------------------------------------------------------------------


def test_image_names() -> None:
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"} <= IMAGE_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)
    assert is_image_name("UPPERCASE.JPG")
    assert is_image_name(Path("a/b/café ☕.jpeg"))
    assert is_image_name("x.HeIc") == (".heic" in IMAGE_EXTENSIONS)
    assert not is_image_name("notes.txt")
    assert not is_image_name("jpg")


def test_file_sha256(bad_dir: Path) -> None:
    path = bad_dir / "photo.webp"
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == expected
    assert file_sha256(path, chunk_size=7) == expected


def test_thumbnail_jpeg(bad_dir: Path) -> None:
    rgb = decode(bad_dir / "photo.bmp").rgb
    data = thumbnail_jpeg(rgb, long_side=100, quality=80)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.size == (100, 67)
    with Image.open(io.BytesIO(thumbnail_jpeg(rgb[:10, :10]))) as im:
        assert im.size == (10, 10)
    with pytest.raises(ValueError, match="RGB"):
        thumbnail_jpeg(rgb[..., 0])


def test_heif_roundtrip(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    noise = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    heif = pillow_heif.from_bytes(mode="RGB", size=(64, 48), data=noise.tobytes())
    path = tmp_path / "photo.heic"
    try:
        heif.save(path, quality=90)
    except Exception as exc:  # the encoder is optional in some builds
        pytest.skip(f"no HEIF encoder: {exc}")
    decoded = decode(path)
    assert decoded.rgb.shape == (48, 64, 3)
    assert decoded.format in ("HEIF", "HEIC")


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR declares ``width`` x ``height`` but holds no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(("width", "height"), [(20000, 15000), (30000, 20000)])
def test_pillow_bomb_warning_and_error_become_decode_error(
    tmp_path: Path, width: int, height: int
) -> None:
    # 300 Mpx triggers Pillow's warning, 600 Mpx its error: both must name the size.
    path = _png_header_only(tmp_path / "big.png", width, height)
    with pytest.raises(DecodeError, match=rf"too large \({width}×{height} pixels"):
        decode(path)


def test_larger_limit_than_pillow_reaches_the_data(tmp_path: Path) -> None:
    # Above Pillow's limit but allowed by the caller: the header is accepted and the
    # missing pixel data is reported instead (nothing of this size is allocated,
    # because the file ends before any row).
    path = _png_header_only(tmp_path / "big.png", 30000, 20000)
    with pytest.raises(DecodeError) as info:
        decode(path, max_pixels=10**9, target_long_side=64)
    assert "too large" not in str(info.value)
