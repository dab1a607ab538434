"""Benchmark-leak detection for training.prepare_data: is a candidate photo a benchmark image, resized,
re-encoded, re-toned or cropped? Matched by thumbnail, by same-scale crop, or by a known package path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from ikc.imageio import to_rgb8

from .sources import PACKAGE_SUFFIXES

THUMB_SIDE = 16
THUMB_MAX_MAD = 2.0
ASPECT_TOLERANCE = 0.01
CROP_MAX_MARGIN = 1.125
CROP_STEP = 8
CROP_BLUR_RADIUS = 2
CROP_MIN_CORRELATION = 0.93
KNOWN_BENCHMARK_MEMBERS = {"dnn_superres/butterfly.png": "Set5/butterfly.png",
                           "examples/data/baboon.jpg": "Set14/baboon.png"}


@dataclass(frozen=True)
class Fingerprint:
    """A tiny greyscale thumbnail and the size of the image it came from."""

    size: tuple[int, int]
    thumb: np.ndarray


@dataclass(frozen=True)
class Benchmark:
    """A benchmark image: its name, fingerprint and crop-matching signal."""

    name: str
    fingerprint: Fingerprint
    signal: np.ndarray


def crop_signal(image: Image.Image) -> np.ndarray:
    """Lightly blurred greyscale pixels (float32), so JPEG noise does not hide a crop."""
    grey = image.convert("L").filter(ImageFilter.BoxBlur(CROP_BLUR_RADIUS))
    return np.asarray(grey, dtype=np.float32)


def standardise(values: np.ndarray) -> np.ndarray:
    """Zero mean, unit spread (all zeros for a flat input)."""
    return (values - values.mean()) / (values.std() + 1e-6)


def fingerprint(image: Image.Image) -> Fingerprint:
    """A 16x16 greyscale box-filtered thumbnail of an RGB image, with its size."""
    thumb = image.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
    return Fingerprint(image.size, np.asarray(thumb, dtype=np.float32))


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """True when two sizes have the same aspect ratio, within ASPECT_TOLERANCE."""
    return abs(a[0] * b[1] - b[0] * a[1]) <= ASPECT_TOLERANCE * b[0] * a[1]


def thumbs_match(a: Fingerprint, b: Fingerprint) -> bool:
    """Same aspect ratio and thumbnails closer than THUMB_MAX_MAD on average."""
    return same_aspect(a.size, b.size) and float(np.abs(a.thumb - b.thumb).mean()) < THUMB_MAX_MAD


def crop_fits(candidate: tuple[int, int], bench: tuple[int, int]) -> bool:
    """True when `bench` fits in `candidate` and is at most CROP_MAX_MARGIN times smaller per side."""
    return all(b <= c <= b * CROP_MAX_MARGIN for c, b in zip(candidate, bench))


def is_crop_of(candidate: np.ndarray, bench: np.ndarray) -> bool:
    """True when `bench` correlates with some same-scale crop of `candidate` (sparse grid)."""
    (ch, cw), (bh, bw) = candidate.shape, bench.shape
    sample = standardise(bench[::CROP_STEP, ::CROP_STEP])
    for dy in range(ch - bh + 1):
        for dx in range(cw - bw + 1):
            window = standardise(candidate[dy:dy + bh:CROP_STEP, dx:dx + bw:CROP_STEP])
            if float((window * sample).mean()) >= CROP_MIN_CORRELATION:
                return True
    return False


def matching_benchmark(marks: Fingerprint, signal: Callable[[], np.ndarray],
                       benchmarks: list[Benchmark]) -> str | None:
    """The name of the benchmark a candidate matches (thumbnail or crop), else None."""
    for bench in benchmarks:
        if thumbs_match(marks, bench.fingerprint):
            return bench.name
        if crop_fits(marks.size, bench.fingerprint.size) and is_crop_of(signal(), bench.signal):
            return bench.name
    return None


def known_benchmark_member(member: str) -> str | None:
    """The benchmark a member is known to be, by its path, else None."""
    for suffix, name in KNOWN_BENCHMARK_MEMBERS.items():
        if member == suffix or member.endswith("/" + suffix):
            return name
    return None


def load_benchmarks(folders: list[Path]) -> list[Benchmark]:
    """Fingerprints and crop-matching signals of every image under `folders`."""
    benchmarks = []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in PACKAGE_SUFFIXES):
            image = to_rgb8(ImageOps.exif_transpose(Image.open(path)))
            name = path.relative_to(folder).as_posix()
            benchmarks.append(Benchmark(name, fingerprint(image), crop_signal(image)))
    return benchmarks
