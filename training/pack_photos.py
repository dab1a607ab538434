"""A compact copy of the training photos to carry to a lent GPU machine (its working tree is limited to 64 MiB).

    python -m training.pack_photos --data data/train --out data/gpu_train [--crop 480 --quality 90]

Each photo becomes its centre crop (at most crop x crop px) as a JPEG of the given quality with full-resolution
colour (4:4:4), about a third of the PNG bytes per pixel. The held-out photos travel too. The defaults (9.3 MiB)
leave room for the working tree (52.8 MiB with the networks for JPEG inputs) and Set5 (0.8 MiB).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from ikc.degradation import centre_crop
from ikc.imageio import load_image

from .dataset import list_images


def pack(data: Path, out: Path, crop: int, quality: int) -> int:
    """Write the crops, and the manifest (each entry marked as packed), into `out`; returns the bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = data / "manifest.json"
    if manifest.is_file():
        packed = f"centre crop of at most {crop} px, JPEG quality {quality}, 4:4:4"
        entries = [{**entry, "packed": packed} for entry in json.loads(manifest.read_text())]
        (out / "manifest.json").write_text(json.dumps(entries, indent=1))
    total = 0
    for path in list_images(data):
        pixels = load_image(path)  # the loader training reads the photos with
        target = out / f"{path.stem}.jpg"
        Image.fromarray(centre_crop(pixels, crop)).save(target, "JPEG", quality=quality, subsampling=0)
        total += target.stat().st_size
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/train"))
    parser.add_argument("--out", type=Path, default=Path("data/gpu_train"))
    parser.add_argument("--crop", type=int, default=480)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args(argv)
    print(f"{pack(args.data, args.out, args.crop, args.quality) / 2 ** 20:.1f} MiB in {args.out}")


if __name__ == "__main__":
    main()
