"""The shipped models: loaded once per scale, their status, their measured numbers beside the paper's, and
the built-in example photos."""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from skimage import data as skdata

import ikc
from ikc.checkpoint import CHECKPOINT_DIR, estimators_path

from .inputs import pixel_digest
from .settings import EXAMPLE_PHOTOS, EXAMPLE_SCALE, EXAMPLE_WIDTH, EXAMPLES_DIR


def model_summary(results: Path, scales: list[int]) -> str:
    """What the model is, with its Gaussian8 PSNR-Y / SSIM-Y on Set5 and Set14 (measured by evaluation.evaluate,
    read from `results`) beside the paper's; a scale without measured numbers is left out."""
    published = json.loads((results / "published.json").read_text())
    rows = []
    for scale in sorted(scales):
        ours = {name: results / f"{name.lower()}_x{scale}.json" for name in ("Set5", "Set14")}
        if not all(path.is_file() for path in ours.values()):
            continue
        cells = []
        for name, path in ours.items():
            psnr, ssim = (json.loads(path.read_text())["methods"]["ikc"][key] for key in ("psnr_y", "ssim_y"))
            paper = published["ikc"][str(scale)][name]
            cells += [f"{psnr:.2f} / {ssim:.3f}", f"{paper[0]:.2f} / {paper[1]:.3f}"]
        rows.append(f"| x{scale} | " + " | ".join(cells) + " |")
    table = ("\n\n| scale | Set5, this app | Set5, paper | Set14, this app | Set14, paper |\n|---|---|---|---|---|\n"
             + "\n".join(rows)) if rows else ""
    return ("**The model.** A small IKC trained for hours on a CPU (and minutes on a lent GPU); "
            f"the paper's was trained for {published['training']}. It has three networks: the *Predictor* "
            "guesses the blur kernel, *SFTMD* (Spatial Feature Transform for Multiple Degradations) enlarges the "
            "photo undoing the kernel it is told, and the *Corrector* judges the result and corrects the kernel. "
            "PSNR-Y / SSIM-Y on the standard test images, each blurred with the 8 Gaussian widths of the paper "
            "(Gaussian8), final step; higher is better." + table)


@functools.cache
def model_for(scale: int) -> ikc.IKC:
    """The pipeline for `scale`, loaded once; SFTMD alone is enough for the mismatch lab."""
    return ikc.load(scale, require_blind=False)


def training_range(scale: int) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """(kernel widths, noise levels) the `scale` model was trained on, or None without a checkpoint."""
    try:
        model = model_for(scale)
    except ikc.CheckpointError:
        return None
    return model.kernel_range, model.noise_range


def load_models(scales: list[int]) -> tuple[list[int], dict[int, str]]:
    """Load each scale now, so that a damaged checkpoint is reported at start-up: (usable scales, problems)."""
    usable, problems = [], {}
    for scale in scales:
        try:
            model_for(scale)
        except ikc.CheckpointError as error:
            problems[scale] = str(error)
        else:
            usable.append(scale)
    return usable, problems


def checkpoint_status(scales: list[int], problems: dict[int, str]) -> str:
    """Markdown: which scales can run, why the others cannot, and what to do when none can."""
    lines = [f"**x{scale} cannot run:** {problem}" for scale, problem in problems.items()]
    if scales:
        parts = [f"x{s}" + ("" if estimators_path(s, CHECKPOINT_DIR).is_file() else " (no Predictor/Corrector: "
                            "only the mismatch lab works)") for s in scales]
        lines.append(f"Models available: {', '.join(parts)}.")
    elif not problems:
        lines.append(f"**No model checkpoints found** in `{CHECKPOINT_DIR}`. The page works, and Run explains what "
                     f"is missing. Put `sftmd_x4.safetensors` and `ikc_x4.safetensors` there (train them with "
                     f"`python -m training.train_sftmd`, `python -m training.train_ikc` and "
                     f"`python -m training.export`), or point the `IKC_CHECKPOINTS` environment variable at a folder "
                     f"that has them.")
    return "\n\n".join(lines)


def example_files() -> tuple[list[str], list[str], dict[str, float]]:
    """Built-in photos from scikit-image as PNG files: (blurred LR versions for Restore, sharp originals, the true
    width of each LR version by its pixel digest)."""
    EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    kernel = ikc.gaussian_kernel(EXAMPLE_WIDTH)
    blurred, sharp, widths = [], [], {}
    for name in EXAMPLE_PHOTOS:
        pixels = getattr(skdata, name)()
        lr = ikc.degrade_image(pixels, kernel, EXAMPLE_SCALE)
        widths[pixel_digest(lr)] = EXAMPLE_WIDTH
        for folder, image, stem in ((blurred, lr, f"{name}_lr_x{EXAMPLE_SCALE}"), (sharp, pixels, name)):
            path = EXAMPLES_DIR / f"{stem}.png"
            partial = path.with_name(f"{stem}.{os.getpid()}.tmp.png")
            ikc.save_png(image, partial).replace(path)  # atomic: several servers may share the folder
            folder.append(str(path))
    return blurred, sharp, widths

