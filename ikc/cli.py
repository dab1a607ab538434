"""Command line: blind super-resolution of an image or a folder of images with IKC.

    python -m ikc INPUT -o OUTPUT [--scale 2|3|4] [--iterations N] [--trajectory DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .archs import SCALES
from .checkpoint import CHECKPOINT_DIR, CheckpointError
from .imageio import IMAGE_SUFFIXES, ImageError, read_image, save_png
from .pipeline import IKC, MAX_ITERATIONS, MIN_LR_SIZE, Step, load, use_available_cpus
from .visualize import kernel_picture, save_animation, step_frame

DESCRIPTION = """\
Blind super-resolution with Iterative Kernel Correction (IKC, Gu et al., CVPR 2019).

The Predictor guesses the blur kernel of INPUT, SFTMD super-resolves with it, and the Corrector
refines the guess for --iterations steps. The result of the final step is written as a PNG.

INPUT is an image file or a folder of images (PNG, JPEG, BMP, TIFF, WebP, GIF). For a file,
OUTPUT is the PNG file to write; for a folder, OUTPUT is a folder and each result is named
<input stem>.png. Bad files are reported one line each and skipped; the exit status is 1 if
any file failed, else 0.

With --trajectory DIR, every step is saved: DIR/<stem>/step_XX.png (SR image),
DIR/<stem>/kernel_XX.png (the kernel drawn back from the code), DIR/<stem>/steps.gif (an animation of
both, step by step) and DIR/<stem>/steps.json (codes, estimated kernel widths and noise levels per step).
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ikc", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="LR image file or folder of images")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output PNG file, or folder for a folder")
    parser.add_argument("--scale", type=int, default=4, choices=SCALES, help="upscaling factor (default 4)")
    parser.add_argument("--iterations", type=int, default=7,
                        help=f"correction steps, 0 to {MAX_ITERATIONS} (default 7; 0 = Predictor only)")
    parser.add_argument("--trajectory", type=Path, help="folder for every step's image, kernel and codes")
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    args = parser.parse_args(argv)
    if not 0 <= args.iterations <= MAX_ITERATIONS:
        parser.error(f"--iterations must be from 0 to {MAX_ITERATIONS}, got {args.iterations}")
    return args


def input_files(path: Path) -> list[Path]:
    """The image files to process: the file itself, or the images in the folder, sorted."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return [path]


def write_trajectory(folder: Path, steps: list[Step]) -> None:
    """Each step's SR image and kernel picture, an animation of them, and a JSON of codes, widths and noise."""
    folder.mkdir(parents=True, exist_ok=True)
    for step in steps:
        save_png(step.sr, folder / f"step_{step.index:02d}.png")
        save_png(kernel_picture(step.kernel), folder / f"kernel_{step.index:02d}.png")
    save_animation([step_frame(s.sr, kernel_picture(s.kernel), f"Step {s.index}: estimated width {s.kernel_width:.2f}")
                    for s in steps], folder / "steps.gif")
    record = [{"step": s.index, "kernel_width": s.kernel_width, "noise_sigma": s.noise_sigma,
               "code": [float(v) for v in s.code]} for s in steps]
    (folder / "steps.json").write_text(json.dumps(record, indent=2) + "\n")


def process(model: IKC, source: Path, target: Path, iterations: int, trajectory: Path | None) -> Step:
    """Restore one file; raises ImageError for a bad input."""
    image = read_image(source, min_size=MIN_LR_SIZE)
    for note in image.notes:
        print(f"{source.name}: note: {note}")
    model = model.for_input(image.jpeg_quality)
    if model.uses_jpeg_sftmd:
        told = f", told quality {model.told_jpeg_quality}" if model.told_jpeg_quality is not None else ""
        print(f"{source.name}: note: restored with the SFTMD trained on JPEG inputs{told}")
    if model.uses_jpeg_estimators:
        print(f"{source.name}: note: kernel estimated by the Predictor and Corrector trained on JPEG inputs")
    steps = model.run(image.pixels, iterations, render="all" if trajectory else "last")
    save_png(steps[-1].sr, target)
    if trajectory:
        write_trajectory(trajectory / source.stem, steps)
    return steps[-1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        use_available_cpus()
        files = input_files(args.input)
        model = load(args.scale, args.checkpoints)
    except (FileNotFoundError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    folder_mode = args.input.is_dir()
    if folder_mode and not files:
        print(f"error: {args.input}: no image files in this folder", file=sys.stderr)
        return 2
    failed = 0
    for source in files:
        target = args.output / f"{source.stem}.png" if folder_mode else args.output
        try:
            last = process(model, source, target, args.iterations, args.trajectory)
        except (ImageError, ValueError, OSError) as error:
            failed += 1
            print(f"error: {source}: {error}" if source.name not in str(error) else f"error: {error}",
                  file=sys.stderr)
            continue
        print(f"{source.name}: estimated kernel width {last.kernel_width:.2f}, noise level "
              f"{last.noise_sigma:.1f} -> {target}")
    if failed:
        print(f"{failed} of {len(files)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
