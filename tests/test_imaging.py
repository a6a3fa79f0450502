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
from helpers import jpeg_claiming, png_with_rows
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

    monkeypatch.setattr(imaging.os, "open", refuse)  # decode opens with os.open
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


# --- headers that lie ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_lying_header_is_truncated_pixel_data_and_costs_no_memory(
    tmp_path, kind, monkeypatch
) -> None:
    import tracemalloc

    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("the pixels were decoded")

    # Refused before any pixel is decoded; tracemalloc sees NumPy's arrays (not
    # Pillow's own buffers), so both the path and the memory are checked.
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)

    if kind == "png":
        row = np.full((1, 14000, 3), 128, dtype=np.uint8)
        path = png_with_rows(tmp_path / "liar.png", 14000, 14000, row)
    else:
        path = jpeg_claiming(tmp_path / "liar.jpg", 14000, 14000)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="truncated pixel data") as info:
            decode(path, target_long_side=512)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "14000×14000" in str(info.value) and path.name in str(info.value)
    # Decoding the declared size would take 588 MB (1.2 GB as measured before the check).
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_png_with_half_its_rows_is_truncated(tmp_path) -> None:
    rows = np.random.default_rng(0).integers(0, 256, (100, 300, 3), dtype=np.uint8)
    with pytest.raises(DecodeError, match=r"truncated pixel data.* 50 % of them"):
        decode(png_with_rows(tmp_path / "half.png", 300, 200, rows))
    complete = decode(png_with_rows(tmp_path / "whole.png", 300, 100, rows))
    assert np.array_equal(complete.rgb, rows)


def test_jpeg_lower_bound_accepts_real_photos(photos_dir: Path) -> None:
    from leitmotiv.pixel_data import missing_pixel_data

    for path in sorted(photos_dir.glob("*.jpg"))[:40]:
        with open(path, "rb") as fh:
            assert missing_pixel_data(fh, "JPEG") is None, path.name


# --- formats told by content -----------------------------------------------------------


def _picture(height: int = 40, width: int = 60) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize(("suffix", "mode"), [(".ppm", "RGB"), (".pgm", "L"), (".pbm", "1")])
def test_netpbm_files_decode(tmp_path, suffix, mode) -> None:
    image = Image.fromarray(_picture()).convert(mode)
    path = tmp_path / f"scan{suffix}"
    image.save(path)
    decoded = decode(path)
    expected = np.asarray(image.convert("RGB"))
    assert decoded.format == "PPM" and np.array_equal(decoded.rgb, expected)


@pytest.mark.parametrize(
    ("depth", "tupltype", "maxval"),
    [(3, "RGB", 255), (1, "GRAYSCALE", 65535), (4, "RGB_ALPHA", 255), (1, "BLACKANDWHITE", 1)],
)
def test_pam_files_decode(tmp_path, depth, tupltype, maxval) -> None:
    rgb = _picture()
    if depth == 1:
        grey = rgb[..., 0].astype(np.int64)
        samples = (grey * maxval // 255)[..., None]
        expected = np.repeat(np.rint(samples * 255.0 / maxval).astype(np.uint8), 3, axis=2)
    elif depth == 4:
        samples = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
        expected = rgb
    else:
        samples, expected = rgb, rgb
    dtype = ">u2" if maxval > 255 else "u1"
    header = (
        f"P7\nWIDTH {rgb.shape[1]}\nHEIGHT {rgb.shape[0]}\nDEPTH {depth}\n"
        f"MAXVAL {maxval}\n# a comment\nTUPLTYPE {tupltype}\nENDHDR\n"
    )
    path = tmp_path / "scan.pam"
    path.write_bytes(header.encode() + samples.astype(dtype).tobytes())
    decoded = decode(path)
    assert decoded.format == "PAM" and np.array_equal(decoded.rgb, expected)
    # The same file cut short is truncated pixel data, named with the file.
    short = tmp_path / "short.pam"
    short.write_bytes(path.read_bytes()[: len(header) + 10])
    with pytest.raises(DecodeError, match=r"short\.pam: truncated pixel data"):
        decode(short)


def test_mpo_gives_its_first_frame_at_the_working_size(tmp_path, photos_dir) -> None:
    first = Image.open(photos_dir / "astronaut_0.jpg").convert("RGB")
    second = first.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    path = tmp_path / "stereo.mpo"
    first.save(path, save_all=True, append_images=[second], quality=95)
    decoded = decode(path, target_long_side=128)
    assert decoded.format == "MPO" and (decoded.width, decoded.height) == first.size
    small = np.asarray(first.resize(decoded.rgb.shape[1::-1], Image.BOX))
    flipped = np.asarray(second.resize(decoded.rgb.shape[1::-1], Image.BOX))
    assert _corr(_grey_small(decoded.rgb), _grey_small(small)) > 0.95
    assert _corr(_grey_small(decoded.rgb), _grey_small(small)) > _corr(
        _grey_small(decoded.rgb), _grey_small(flipped)
    )


def test_avif_decodes(tmp_path, photos_dir) -> None:
    assert ".avif" in IMAGE_EXTENSIONS, "this Pillow reads no AVIF (Pillow >= 11.3 does)"
    source = Image.open(photos_dir / "coffee_0.jpg").convert("RGB")
    path = tmp_path / "photo.avif"
    source.save(path, quality=90)
    decoded = decode(path)
    assert decoded.format == "AVIF" and decoded.rgb.shape == (source.height, source.width, 3)
    assert _corr(_grey_small(decoded.rgb), _grey_small(np.asarray(source))) > 0.98


def test_a_jpeg_named_anything_decodes_by_content(tmp_path, photos_dir) -> None:
    path = tmp_path / "IMG_0001"
    path.write_bytes((photos_dir / "coffee_0.jpg").read_bytes())
    assert decode(path).format == "JPEG"


def test_named_pipe_is_refused_before_opening(tmp_path) -> None:
    from helpers import no_hang

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with no_hang(30):  # opening the pipe for reading would wait forever for a writer
        with pytest.raises(DecodeError, match=r"pipe\.jpg: not a regular file \(a named pipe"):
            decode(fifo)
        with pytest.raises(DecodeError, match="not a regular file"):
            imaging.regular_file_stat(fifo)


def test_a_photo_file_cut_inside_its_header_is_called_corrupt(tmp_path, photos_dir) -> None:
    buffer = io.BytesIO()
    Image.open(photos_dir / "coffee_0.jpg").save(buffer, format="PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(buffer.getvalue()[:33])  # the signature and the IHDR chunk only
    with pytest.raises(DecodeError, match=r"cut\.png: corrupt PNG file"):
        decode(cut)
    with pytest.raises(DecodeError, match=r"cut\.png: corrupt PNG file"):
        imaging.decode_bytes(cut.read_bytes(), "cut.png")


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="no /proc/cpuinfo here")
def test_a_file_of_size_zero_with_content_is_not_called_empty() -> None:
    with pytest.raises(DecodeError, match=r"cpuinfo: not an image"):
        decode("/proc/cpuinfo")


# --- camera RAW ----------------------------------------------------------------------


def test_dng_demosaic_resembles_its_source(tmp_path, photos_dir) -> None:
    from dng_writer import write_dng

    source = np.asarray(Image.open(photos_dir / "coffee_0.jpg").convert("RGB"))
    taken = dt.datetime(2019, 5, 4, 13, 2, 1)
    path = write_dng(tmp_path / "IMG_0001.dng", source, taken=taken)
    decoded = decode(path, target_long_side=256)
    assert decoded.format == "DNG"
    even = (source.shape[1] // 2 * 2, source.shape[0] // 2 * 2)  # the mosaic's size
    assert (decoded.width, decoded.height) == even
    assert max(decoded.rgb.shape[:2]) == 256
    small = np.asarray(Image.fromarray(source).resize(decoded.rgb.shape[1::-1], Image.BOX))
    assert _corr(_grey_small(decoded.rgb), _grey_small(small)) > 0.95
    # Colours survive the mosaic and LibRaw's colour pipeline (within a few levels).
    mean_error = np.abs(decoded.rgb.reshape(-1, 3).mean(0) - small.reshape(-1, 3).mean(0))
    assert mean_error.max() < 15, mean_error
    assert (decoded.taken, decoded.taken_source) == (taken, "exif")


@pytest.mark.parametrize(
    ("jpeg", "orientation", "turns"),
    [(False, 6, -1), (True, 3, 2)],  # tag 6: 90° clockwise to view; tag 3: 180°
)
def test_dng_preview_is_used_and_turned_upright(
    tmp_path, photos_dir, jpeg, orientation, turns
) -> None:
    from dng_writer import write_dng

    source = np.asarray(Image.open(photos_dir / "coffee_0.jpg").convert("RGB"))
    # The preview differs from the mosaic (mirrored), so the test sees which was used.
    preview = np.ascontiguousarray(source[:, ::-1])
    path = write_dng(
        tmp_path / "turned.dng", source, preview=preview, preview_jpeg=jpeg, orientation=orientation
    )
    target = max(source.shape[:2]) - 20  # the preview is large enough
    decoded = decode(path, target_long_side=target)
    height, width = (source.shape[0] // 2) * 2, (source.shape[1] // 2) * 2  # the mosaic's
    upright = np.ascontiguousarray(np.rot90(preview, k=turns))
    if turns % 2:
        width, height = height, width
    assert (decoded.width, decoded.height) == (width, height)
    assert max(decoded.rgb.shape[:2]) == target
    assert (decoded.rgb.shape[0] > decoded.rgb.shape[1]) == (height > width)
    small = np.asarray(Image.fromarray(upright).resize(decoded.rgb.shape[1::-1], Image.BOX))
    assert _corr(_grey_small(decoded.rgb), _grey_small(small)) > 0.98
    # Asked for more than the preview holds, the mosaic is demosaiced instead.
    full = decode(path, target_long_side=2000)
    mosaic = np.ascontiguousarray(np.rot90(source, k=turns))
    assert _corr(_grey_small(full.rgb), _grey_small(mosaic)) > 0.95


def test_dng_preview_of_another_shape_is_not_the_picture(tmp_path, photos_dir) -> None:
    from dng_writer import write_dng

    source = np.asarray(Image.open(photos_dir / "coffee_0.jpg").convert("RGB"))
    # A letterboxed preview (half the height) shows less than the whole picture.
    preview = np.ascontiguousarray(source[: source.shape[0] // 2, ::-1])
    path = write_dng(tmp_path / "wide.dng", source, preview=preview)
    decoded = decode(path, target_long_side=max(source.shape[:2]) // 2)
    small = np.asarray(Image.fromarray(source).resize(decoded.rgb.shape[1::-1], Image.BOX))
    assert _corr(_grey_small(decoded.rgb), _grey_small(small)) > 0.95  # the demosaic


def test_dng_whose_name_is_not_utf8_decodes(tmp_path, photos_dir) -> None:
    from dng_writer import write_dng

    source = np.asarray(Image.open(photos_dir / "coffee_0.jpg").convert("RGB"))
    plain = write_dng(tmp_path / "plain.dng", source)
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.dng"))
    odd.write_bytes(plain.read_bytes())
    same = decode(plain, target_long_side=128).rgb
    assert np.array_equal(decode(odd, target_long_side=128).rgb, same)
    # Like every format, a RAW file larger than the limit is refused before developing.
    with pytest.raises(DecodeError, match=r"plain\.dng: too large \(\d+×\d+ pixels, limit 1000"):
        decode(plain, max_pixels=1000)


def test_broken_raw_files_are_refused(tmp_path, photos_dir) -> None:
    from dng_writer import write_dng

    source = np.asarray(Image.open(photos_dir / "coffee_0.jpg").convert("RGB"))
    whole = write_dng(tmp_path / "whole.dng", source).read_bytes()
    cut = tmp_path / "cut.dng"  # this writer puts the IFDs last: they are cut off
    cut.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(DecodeError, match=r"cut\.dng: not a camera RAW file"):
        decode(cut)
    text = tmp_path / "notes.nef"
    text.write_bytes(b"not a raw file at all\n" * 20)
    with pytest.raises(DecodeError, match=r"notes\.nef: not a camera RAW file"):
        decode(text)


# --- implausible capture dates ----------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "source"),
    [
        ("9999:12:31 23:59:59", "mtime-bad-exif"),
        ("1800:01:01 00:00:00", "mtime-bad-exif"),
        ("0001:01:01 00:00:00", "mtime-bad-exif"),
        ("1900:06:01 12:00:00", "exif"),
        ("2020:02:29 08:00:00", "exif"),
    ],
)
def test_implausible_exif_dates_fall_back_to_the_file_time(tmp_path, stamp, source) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = stamp
    path = _save(tmp_path, "dated.jpg", Image.new("RGB", (8, 8)), exif=exif.tobytes())
    os.utime(path, (1_600_000_000, 1_600_000_000))
    decoded = decode(path)
    assert decoded.taken_source == source
    if source == "exif":
        assert decoded.taken == dt.datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S")
    else:
        assert decoded.taken == dt.datetime.fromtimestamp(1_600_000_000)


def test_a_date_just_ahead_is_kept_one_far_ahead_is_not(tmp_path) -> None:
    for days, source in ((0.5, "exif"), (3, "mtime-bad-exif")):
        exif = Image.Exif()
        ahead = dt.datetime.now() + dt.timedelta(days=days)
        exif.get_ifd(0x8769)[0x9003] = ahead.strftime("%Y:%m:%d %H:%M:%S")
        path = _save(tmp_path, "ahead.jpg", Image.new("RGB", (8, 8)), exif=exif.tobytes())
        assert decode(path).taken_source == source, days


def test_pixel_data_check_leaves_what_it_cannot_follow_to_the_decoder() -> None:
    from leitmotiv.pixel_data import missing_pixel_data

    # A frame header cut short, an IHDR of the wrong length: no claim either way.
    jpeg = b"\xff\xd8\xff\xc0\x00\x05\x08\x00"
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x04IHDR\x00\x00"
    assert missing_pixel_data(io.BytesIO(jpeg), "JPEG") is None
    assert missing_pixel_data(io.BytesIO(png), "PNG") is None
