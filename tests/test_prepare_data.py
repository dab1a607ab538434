"""Tests for training.prepare_data (with training.sources and training.leak_check): cleaning, halving,
benchmark refusal and the manifest."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training import prepare_data as pd
from training.leak_check import crop_signal, fingerprint, is_crop_of, thumbs_match
from training.sources import output_stems


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A smooth random RGB test image."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def run(tmp_path: Path, out: str, extra: Path, *more: str) -> dict:
    """Run main() on one extra folder, packages off; returns the manifest."""
    assert pd.main(["--out", str(tmp_path / out), "--cache", str(tmp_path / "cache"),
                    "--no-packages", "--extra", str(extra), *more]) == 0
    return json.loads((tmp_path / out / "manifest.json").read_text())


def test_greyscale_becomes_rgb():
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    rgb = np.asarray(pd.to_rgb8(grey))
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert (rgb == np.asarray(grey)[..., None]).all()


def test_rgba_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (0, 0, 255, 255)
    rgba[0, 1] = (255, 0, 0, 0)
    rgba[1, 0] = (0, 0, 0, 128)
    rgb = np.asarray(pd.to_rgb8(Image.fromarray(rgba, "RGBA")))
    assert tuple(rgb[0, 0]) == (0, 0, 255)
    assert tuple(rgb[0, 1]) == (255, 255, 255)
    assert abs(int(rgb[1, 0, 0]) - 127) <= 1


def test_palette_with_transparency(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(tmp_path / "p.png", transparency=0)
    rgb = pd.to_rgb8(Image.open(tmp_path / "p.png"))
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 1)) == (10, 200, 30)


def test_16_bit_is_scaled_to_8_bit(tmp_path):
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    rgb = np.asarray(pd.to_rgb8(Image.open(tmp_path / "deep.png")))
    assert rgb.dtype == np.uint8
    assert rgb[0, :, 0].tolist() == [0, 1, 255, 128]


@pytest.mark.parametrize("size, is_jpeg, halve", [
    ((2560, 1600), True, True), ((1600, 1200), True, True), ((1600, 1199), True, False),
    ((2560, 1600), False, False)])
def test_halving_rule(size, is_jpeg, halve):
    assert pd.should_halve(size, is_jpeg) is halve


def test_clean_halves_large_jpeg_only(tmp_path):
    big = photo(2400, 1200, 0)
    big.save(tmp_path / "big.jpg", quality=80)
    big.save(tmp_path / "big.png")
    assert pd.clean(Image.open(tmp_path / "big.jpg"), None).size == (1200, 600)
    assert pd.clean(Image.open(tmp_path / "big.png"), None).size == (2400, 1200)
    assert pd.clean(Image.open(tmp_path / "big.png"), 600).size == (600, 300)


def test_clean_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    photo(64, 32, 1).save(tmp_path / "turned.jpg", exif=exif)
    assert pd.clean(Image.open(tmp_path / "turned.jpg"), None).size == (32, 64)


def test_output_stems_disambiguate_same_names():
    assert output_stems(["a/x.jpg", "a/y.png"]) == ["x", "y"]
    assert output_stems(["w/One/img/2560x1600.jpg", "w/Two/img/2560x1600.jpg"]) == [
        "One_img_2560x1600", "Two_img_2560x1600"]


def test_retoned_same_scale_crop_is_found():
    full = photo(128, 128, 2)
    crop = np.asarray(full.crop((3, 5, 123, 125)), np.float32) * 0.8 + 20
    retoned = Image.fromarray(crop.astype(np.uint8))
    assert is_crop_of(crop_signal(full), crop_signal(retoned))
    assert not is_crop_of(crop_signal(full), crop_signal(photo(120, 120, 3)))


def test_benchmark_resaved_as_jpeg_is_refused(tmp_path, capsys):
    bench, extra = tmp_path / "bench" / "Set5", tmp_path / "extra"
    bench.mkdir(parents=True)
    extra.mkdir()
    photo(200, 160, 4).save(bench / "bird.png")
    Image.open(bench / "bird.png").save(extra / "bird_copy.jpg", quality=85)
    photo(200, 160, 5).save(extra / "other.png")
    manifest = run(tmp_path, "out", extra, "--benchmarks", str(tmp_path / "bench"))
    assert [r["file"] for r in manifest] == ["extra__other.png"]
    assert "Set5/bird.png" in capsys.readouterr().err
    assert not (tmp_path / "out" / "extra__bird_copy.png").exists()


def test_known_benchmark_refused_by_name_without_benchmarks(tmp_path):
    extra = tmp_path / "extra"
    (extra / "examples" / "dnn_superres").mkdir(parents=True)
    photo(64, 64, 6).save(extra / "examples" / "dnn_superres" / "butterfly.png")
    photo(64, 64, 7).save(extra / "examples" / "kept.png")
    assert [r["member"] for r in run(tmp_path, "out", extra, "--benchmarks")] == ["examples/kept.png"]


def test_manifest_is_deterministic(tmp_path):
    extra = tmp_path / "extra"
    (extra / "sub").mkdir(parents=True)
    photo(90, 60, 8).save(extra / "b.jpg", quality=90)
    Image.fromarray(np.full((40, 30, 4), 100, np.uint8), "RGBA").save(extra / "sub" / "a.png")
    first = run(tmp_path, "out", extra, "--benchmarks")
    text = (tmp_path / "out" / "manifest.json").read_bytes()
    written = (tmp_path / "out" / "extra__b.png").stat().st_mtime_ns
    assert run(tmp_path, "out", extra, "--benchmarks") == first
    assert (tmp_path / "out" / "extra__b.png").stat().st_mtime_ns == written  # reused, not re-encoded
    assert (tmp_path / "out" / "manifest.json").read_bytes() == text
    run(tmp_path, "fresh", extra, "--benchmarks")
    assert (tmp_path / "fresh" / "manifest.json").read_bytes() == text
    assert [r["file"] for r in first] == ["extra__a.png", "extra__b.png"]
    record = first[1]
    png = (tmp_path / "out" / record["file"]).read_bytes()
    assert (record["width"], record["height"], record["bytes"]) == (90, 60, len(png))
    assert record["sha256"] == pd.sha256_bytes(png)
    assert record["member"] == "b.jpg" and record["source"] == str(extra)


def test_unreadable_file_is_reported_and_skipped(tmp_path, capsys):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "broken.png").write_bytes(b"not a png at all")
    photo(50, 40, 9).save(extra / "good.png")
    manifest = run(tmp_path, "out", extra, "--benchmarks")
    assert [r["file"] for r in manifest] == ["extra__good.png"]
    assert "broken.png" in capsys.readouterr().err


def test_thumbnail_matches_a_smaller_jpeg_copy(tmp_path):
    original = photo(240, 160, 10)
    original.resize((120, 80), Image.Resampling.LANCZOS).save(tmp_path / "small.jpg", quality=85)
    copy = pd.to_rgb8(Image.open(tmp_path / "small.jpg"))
    assert thumbs_match(fingerprint(copy), fingerprint(original))
    assert not thumbs_match(fingerprint(photo(240, 160, 11)), fingerprint(original))
