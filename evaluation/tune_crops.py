"""Compare estimation-crop settings of the fast loop on held-out training photos, never on the benchmarks.

    python -m evaluation.tune_crops [--settings 32:1,28:2,24:2,0:1] [--scale 4] [--data data/train]

Each setting is SIZE:COUNT (COUNT textured SIZE-px windows; 0:1 is the full-image loop). The photos are
the ones training holds out (training.dataset.split_holdout), centre-cropped to `--crop` px, blurred
with each Gaussian8 width of the scale; the score is the mean PSNR-Y of IKC's final step.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

import ikc
from ikc.checkpoint import CHECKPOINT_DIR
from training.config import TrainConfig
from training.dataset import list_images, split_holdout

from .convergence import make_cases


def parse_settings(text: str) -> dict[str, tuple[int, int]]:
    """"28:2,0:1" -> {"28:2": (28, 2), "0:1": (0, 1)}; ValueError names a malformed item."""
    settings = {}
    for item in text.split(","):
        parts = item.split(":")
        if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
            raise ValueError(f"--settings must be SIZE:COUNT pairs such as 28:2,0:1; got {item!r}")
        settings[item] = (int(parts[0]), int(parts[1]))
    return settings


def held_out_pairs(data: Path, scale: int, crop: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(HR, LR) pairs: each held-out photo's centre crop, degraded with each Gaussian8 width."""
    _, held_out = split_holdout(list_images(data), TrainConfig.holdout_images)
    cases = make_cases([(path.name, ikc.load_image(path)) for path in held_out], scale, ikc.GAUSSIAN8[scale], crop)
    return [(case.hr, case.lr) for case in cases]


def final_psnr(model: ikc.IKC, pairs: list[tuple[np.ndarray, np.ndarray]], iterations: int) -> float:
    """Mean PSNR-Y of the final step over the pairs."""
    scores = [ikc.psnr_y(model.run(lr, iterations, render="last")[-1].sr, hr, model.scale)
              for hr, lr in tqdm(pairs, desc="pairs", leave=False, dynamic_ncols=True)]
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="32:1,28:2,24:2,24:3,32:2,0:1", help="comma-separated SIZE:COUNT")
    parser.add_argument("--scale", type=int, default=4, choices=ikc.SCALES)
    parser.add_argument("--iterations", type=int, default=7)
    parser.add_argument("--data", type=Path, default=Path("data/train"), help="the training photos")
    parser.add_argument("--crop", type=int, default=512, help="HR centre crop (px) of each held-out photo")
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINT_DIR)
    args = parser.parse_args(argv)
    ikc.use_available_cpus()  # as the app and the CLI do: the container's quota, or IKC_THREADS
    try:
        settings = parse_settings(args.settings)
    except ValueError as error:
        parser.error(str(error))
    pairs = held_out_pairs(args.data, args.scale, args.crop)
    if not pairs:
        parser.error(f"no photos in {args.data}")
    results = {}
    for setting, (size, count) in settings.items():
        model = ikc.load(args.scale, args.checkpoints, estimation_crop=size or None, estimation_crops=count)
        results[setting] = final_psnr(model, pairs, args.iterations)
        print(f"{setting}: final PSNR-Y {results[setting]:.3f} dB over {len(pairs)} pairs", flush=True)
    return results


if __name__ == "__main__":
    main()
