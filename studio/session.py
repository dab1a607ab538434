"""A session's run: every step of the correction loop, stored compactly, scored against the truth when known,
and streamed from the model; the stop signal; the downloadable result."""
from __future__ import annotations

import io
import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

import ikc

from .settings import RESULTS_DIR


@dataclass
class Truth:
    """What the degradation lab knows: the sharp photo (cropped to a multiple of the scale) and the kernel."""

    hr: np.ndarray
    kernel: np.ndarray
    width: float  # the kernel's width (ikc.estimate_width: of an anisotropic kernel, the isotropic one blurring as far)
    noise_sigma: float  # the level, or the lowest of a region-varying one
    warning: str  # why the degradation lies outside the training range, or ""
    noise_max: float | None = None  # the highest level when the noise varies by region


def pack(pixels: np.ndarray) -> bytes:
    """An image as lossless PNG bytes, quickly compressed (a photo-like result: about 40% of its raw size)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def unpack(data: bytes) -> np.ndarray:
    """The (H, W, 3) uint8 image that `pack` stored."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


@dataclass
class RunResult:
    """A session's run of the correction loop: every step so far, its images stored compactly (PNG bytes)."""

    lr: np.ndarray
    scale: int
    iterations: int
    truth: Truth | None = None
    start_width: float | None = None  # step 0 is this Gaussian (noise 0) instead of the Predictor's guess
    known_width: float | None = None  # the true width of a built-in example, known without its sharp original
    jpeg_quality: int | None = None  # the LR image is a JPEG of this quality, and the networks are told so
    steps: list[ikc.Step] = field(default_factory=list)  # without images: they are kept packed in `images`
    images: dict[int, bytes] = field(default_factory=dict)  # step -> its SR image, packed
    scores: dict[int, tuple[float, float]] = field(default_factory=dict)  # step -> (PSNR-Y, SSIM-Y)
    download: Path | None = None
    shown: int = 0  # the step the viewer shows: a queued render of a step the user has left is skipped
    playing: bool = False  # Play is stepping through: scrubbing stops it, so a tick already on its way is dropped
    on_screen: int | None = None  # the step whose image the viewer shows (it stays while another is rendered)
    stale: bool = False  # the lab's settings changed after this run: its steps no longer match them
    bicubic: bytes = field(init=False)  # the bicubic enlargement, packed
    bicubic_psnr: float = field(init=False)  # its PSNR-Y against the truth (NaN without one)

    def __post_init__(self) -> None:
        bicubic = ikc.upscale_bicubic(self.lr, self.scale)
        self.bicubic = pack(bicubic)
        self.bicubic_psnr = ikc.psnr_y(bicubic, self.truth.hr, self.scale) if self.truth is not None else math.nan

    def record(self, step: ikc.Step) -> None:
        """Store (or replace) a step, packing its image and scoring it against the truth when known."""
        self.steps[step.index:step.index + 1] = [replace(step, sr=None)]
        if step.sr is not None:
            self.images[step.index] = pack(step.sr)
            if self.truth is not None:
                self.scores[step.index] = ikc.psnr_ssim_y(step.sr, self.truth.hr, self.scale)

    def image(self, index: int) -> np.ndarray | None:
        """Step `index`'s SR image, or None while it is not rendered."""
        return unpack(self.images[index]) if index in self.images else None

    def render(self, model: ikc.IKC, index: int) -> None:
        """Render step `index`'s SR image at full size and store it, unless it is stored already."""
        if index not in self.images:
            sr = model.for_input(self.jpeg_quality).render(self.lr, self.steps[index].code)
            self.record(replace(self.steps[index], sr=sr))


@dataclass
class StopSignal:
    """A tab's Stop button in one session: pressed while a run streams (or waits in the queue), the run ends
    after its current step and keeps the steps it has; Run re-arms it."""

    pressed: bool = False


def delete_run_files(run: RunResult | None) -> None:
    """Remove a run's downloadable file when the session's results expire."""
    if run is not None and run.download is not None:
        shutil.rmtree(run.download.parent, ignore_errors=True)


def results_folder(request: gr.Request, tab: str) -> Path:
    """The folder that holds one session's downloadable result of one tab."""
    session = re.sub(r"[^A-Za-z0-9]+", "", request.session_hash or "")[:64] or "anonymous"
    return RESULTS_DIR / session / tab


def save_download(run: RunResult, folder: Path, stem: str) -> Path:
    """Write the final result as a lossless PNG into `folder`, replacing the session's previous one."""
    shutil.rmtree(folder, ignore_errors=True)
    return ikc.save_png(run.image(run.iterations), folder / f"{stem}_ikc_x{run.scale}.png")


def correction_stream(model: ikc.IKC, run: RunResult, fill_in: bool) -> Iterator[tuple[int, str]]:
    """Run the loop into `run`, yielding (step to show, progress line) as steps are estimated and rendered.

    Every step is estimated (quick: on a crop); step 0 and the final step are rendered at once, so the result
    arrives early. The steps between are rendered after the final one with `fill_in`, else when looked at.
    """
    last = run.iterations
    model = model.for_input(run.jpeg_quality)  # a JPEG: the SFTMD trained on JPEG inputs, where one ships
    start = None if run.start_width is None else model.code_for(ikc.gaussian_kernel(run.start_width))
    for step in model.steps(run.lr, last, init_code=start, render="none"):
        run.record(step)
        if step.index in (0, last):
            run.render(model, step.index)
        yield step.index, f"Step {step.index} of {last} done"
    if not fill_in:
        return
    for index in range(1, last):
        run.render(model, index)
        yield last, f"Final result ready; rendering the steps in between: {index} of {last - 1}"


def jpeg_note(model: ikc.IKC, run: RunResult) -> list[str]:
    """What the run did about JPEG compression, for the notes under the result ([] for a lossless image)."""
    if run.jpeg_quality is None:
        return []
    variant = model.for_input(run.jpeg_quality)
    told = f", told quality {variant.told_jpeg_quality}" if variant.told_jpeg_quality is not None else ""
    notes = ([f"restored with the SFTMD trained on JPEG inputs{told}"] if variant.uses_jpeg_sftmd else
             ["restored with the SFTMD trained on lossless images (no JPEG one for this scale and quality)"])
    if variant.uses_jpeg_estimators:
        notes.append("kernel estimated by the Predictor and Corrector trained on JPEG inputs")
    return notes


def step_record(step: ikc.Step) -> dict:
    """A step as JSON-ready data for the API."""
    return {"step": step.index, "kernel_width": round(step.kernel_width, 4), "noise_sigma": round(step.noise_sigma, 4),
            "code": [round(float(v), 6) for v in step.code], "kernel": np.round(step.kernel, 6).tolist()}

