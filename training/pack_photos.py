"""A compact copy of the training photos to carry to a lent GPU machine (its working tree is limited to 64 MiB).

    python -m training.pack_photos --data data/train --out data/gpu_train [--crop 352 --quality 95 --halve-from 512]

Each photo whose short side is at least --halve-from px is first halved with an antialiased (Lanczos) resize,
then cut to its centre crop (at most crop x crop px) and stored as a JPEG of the given quality with full-resolution
colour (4:4:4). Halving keeps more of a photo's scene in few pixels and leaves them sharp, so the quality can be
high enough that no compression shows (43.3 dB against the halved photo, at least 38.6, on the 143 photos); the
halved photos stay at least 256 px, the HR side of x4's 64-px LR patches. The held-out photos travel too
(`dataset.split_holdout` holds out the same ones as in the originals). The defaults (8.5 MiB) leave room for the
working tree (53.5 MiB) and Set5 (0.8 MiB).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ikc.degradation import centre_crop
from ikc.imageio import load_image

from .dataset import list_images
from .prepare_data import resize_antialiased


def packed_photo(pixels: np.ndarray, crop: int, halve_from: int) -> np.ndarray:
    """The (H, W, 3) photo halved when its short side is at least `halve_from`, then its centre crop."""
    if min(pixels.shape[:2]) >= halve_from:
        image = Image.fromarray(pixels)
        pixels = np.asarray(resize_antialiased(image, (image.width // 2, image.height // 2)))
    return centre_crop(pixels, crop)


def pack(data: Path, out: Path, crop: int, quality: int, halve_from: int) -> int:
    """Write the packed photos, and the manifest (each entry marked as packed), into `out`; returns the bytes
    written."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = data / "manifest.json"
    if manifest.is_file():
        packed = (f"halved if its short side is at least {halve_from} px, centre crop of at most {crop} px, "
                  f"JPEG quality {quality}, 4:4:4")
        entries = [{**entry, "packed": packed} for entry in json.loads(manifest.read_text())]
        (out / "manifest.json").write_text(json.dumps(entries, indent=1))
    total = 0
    for path in list_images(data):
        pixels = packed_photo(load_image(path), crop, halve_from)  # load_image: the loader training reads with
        target = out / f"{path.stem}.jpg"
        Image.fromarray(pixels).save(target, "JPEG", quality=quality, subsampling=0)
        total += target.stat().st_size
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/train"))
    parser.add_argument("--out", type=Path, default=Path("data/gpu_train"))
    parser.add_argument("--crop", type=int, default=352)
    parser.add_argument("--quality", type=int, default=95)
    parser.add_argument("--halve-from", type=int, default=512, help="halve photos whose short side is this or more")
    args = parser.parse_args(argv)
    written = pack(args.data, args.out, args.crop, args.quality, args.halve_from)
    print(f"{written / 2 ** 20:.1f} MiB in {args.out}")


if __name__ == "__main__":
    main()
