"""How well is the noise level estimated? The Predictor's, the flat regions' (ikc.noise) and the loop's step 0.

    python -m evaluation.noise_level --hr-dir DIR [--scale 4] [--width 2.2] [--levels 0,5,10,15,25] [--limit N]

Each photo (modcropped) is blurred with one width, shrunk, and given each noise level (seeded). Printed per
level: the mean estimate and mean absolute error of the Predictor's noise entry, of ikc.noise's reading, and of
what the loop's step 0 uses (the reading where it shows clear noise, else the Predictor's), and the mean
absolute error over all levels.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import ikc
from ikc.checkpoint import CHECKPOINT_DIR
from ikc.noise import estimate_noise
from training.dataset import list_images


def noise_errors(predictor: ikc.IKC, loop: ikc.IKC, photos: list[np.ndarray], scale: int, width: float,
                 levels: list[float]) -> dict[str, dict[float, tuple[float, float]]]:
    """{"predictor" | "image" | "loop": {level: (mean estimate, mean |error|)}} over the photos; `predictor` is
    loaded with noise_from_image=False (its step 0 keeps the Predictor's noise entry), `loop` as users get it."""
    estimates: dict[str, dict[float, list[float]]] = {"predictor": {}, "image": {}, "loop": {}}
    for index, hr in enumerate(photos):
        for level in levels:
            lr = ikc.degrade_image(hr, ikc.gaussian_kernel(width), scale, level, seed=index)
            estimates["predictor"].setdefault(level, []).append(predictor.run(lr, 0, render="none")[0].noise_sigma)
            estimates["image"].setdefault(level, []).append(estimate_noise(lr))
            estimates["loop"].setdefault(level, []).append(loop.run(lr, 0, render="none")[0].noise_sigma)
    return {name: {level: (float(np.mean(values)), float(np.mean(np.abs(np.array(values) - level))))
                   for level, values in per_level.items()} for name, per_level in estimates.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hr-dir", required=True, type=Path)
    parser.add_argument("--scale", type=int, default=4, choices=ikc.SCALES)
    parser.add_argument("--width", type=float, default=2.2, help="blur width in HR px")
    parser.add_argument("--levels", default="0,5,10,15,25", help="noise sigmas (0-255 scale), comma list")
    parser.add_argument("--limit", type=int, help="use the first N photos by name")
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINT_DIR)
    args = parser.parse_args(argv)
    ikc.use_available_cpus()
    predictor, loop = (ikc.load(args.scale, args.checkpoints, noise_from_image=flag) for flag in (False, True))
    photos = [ikc.modcrop(ikc.load_image(p), args.scale) for p in list_images(args.hr_dir)[:args.limit]]
    if not photos:
        raise SystemExit(f"no images in {args.hr_dir}")
    levels = [float(level) for level in args.levels.split(",")]
    for name, per_level in noise_errors(predictor, loop, photos, args.scale, args.width, levels).items():
        cells = "  ".join(f"{level:g}: {mean:.2f} (MAE {error:.2f})" for level, (mean, error) in per_level.items())
        overall = np.mean([error for _, error in per_level.values()])
        print(f"{name:>9}: {cells}  | MAE over levels {overall:.2f}")


if __name__ == "__main__":
    main()
