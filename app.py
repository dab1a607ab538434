"""IKC Studio: blind super-resolution with Iterative Kernel Correction, step by step, in the browser.

    python app.py     # serves http://127.0.0.1:7860; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT change that

Tabs: Restore (blind), Degradation lab (ground truth known), Kernel-mismatch lab (the paper's Figure 2).
Named API endpoints: /degrade and /super_resolve. All model work goes through the `ikc` package.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import GradioRootModel, ImageData
from gradio.utils import get_upload_folder
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image, ImageDraw
from skimage import data as skdata

import ikc
from ikc.checkpoint import CHECKPOINT_DIR, estimators_path
from ikc.imageio import to_tensor
from ikc.pipeline import MIN_LR_SIZE, textured_windows
from ikc.visualize import kernel_picture, save_animation, step_frame

MAX_RESULT_SIDE = 768  # documented limit: inputs are downscaled so that the SR result has at most 768x768 px
MAX_RESULT_PIXELS = MAX_RESULT_SIDE ** 2  # the limit is this pixel count: 1024x576 fits as well
WHOLE, REGION = "The whole photo, downscaled to fit", "A region at full resolution"
PICKER_SIDE = 640  # px: the region picker shows the photo at most this large
MAX_UPLOAD = "25mb"
MAX_ITERATIONS, DEFAULT_ITERATIONS = 15, 7
MAX_NOISE = 25.0
MAX_BLOCK_NOISE = 75.0  # region-varying noise may go far beyond the training range, to show what it does
WIDTH_LIMITS = (0.2, 6.0)  # the labs offer widths beyond the training range on purpose
MISMATCH_OFFSETS = (-1.2, -0.9, -0.6, -0.3, 0.0, 0.3, 0.6, 0.9, 1.2)
ZOOM_SIDE = 64  # HR px of the lab's zoomed patch
MISMATCH_CROP = 96  # LR pixels: the mismatch lab works on the central crop so nine passes stay quick
SESSION_TTL = 3600  # seconds a session's results are kept
MAX_SESSIONS = 200  # sessions kept in memory at most; the least recently used are dropped first
QUEUE_SIZE = int(os.environ.get("IKC_QUEUE_SIZE") or 64)  # waiting jobs: a class of 30 pressing Run at once fits
EXAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
EXAMPLE_WIDTH, EXAMPLE_SCALE = 2.0, 4
CLASSROOM = {"photo": "astronaut", "scale": 4, "width": 2.6, "start": 1.0}  # a preset that starts far off
RESULTS = Path(__file__).resolve().parent / "results"  # the shipped weights' measured Gaussian8 numbers
TEMP = Path(tempfile.gettempdir())
RESULTS_DIR, EXAMPLES_DIR = TEMP / "ikc-studio-results", TEMP / "ikc-studio-examples"

EXPLAIN_KERNEL = """\
**The blur kernel.** No camera records a perfectly sharp picture: every point of light spreads into a
small blob (lens, focus, shake, and the shrinking of the photo). That blob is the *blur kernel*. The kernel
pictures show it as a 21x21 heat map: a tight bright dot means little blur, a wide glow means strong blur.
For the Gaussian blurs IKC is trained on, one number describes it: the *width* (sigma, in pixels of the
large image). The *noise level* is the grain on top, on the 0-255 scale.
"""
EXPLAIN_STEPS = """\
**What each step does.** Step 0: the *Predictor* looks at the photo and guesses the kernel; *SFTMD*
enlarges the photo, undoing exactly the blur it is told about. Steps 1, 2, ...: the *Corrector* looks at the
latest result, judges whether it looks too soft or too sharp, and nudges the kernel estimate; SFTMD enlarges
again with the new estimate. The width usually settles after a few steps. Sometimes an earlier step looks
best: use the slider (an earlier step's image is rendered the first time you look at it). The before/after
slider compares plain bicubic enlargement with the final step.
"""
EXPLAIN_MISMATCH = """\
**Why a wrong kernel hurts.** SFTMD trusts the kernel it is given. Told a kernel that is *too small*, it
removes too little blur: the result stays soft (over-smoothing). Told one that is *too large*, it removes
blur that is not there: edges get halos and ripples (ringing). Between the two lies the true kernel, with
the best result. This is why IKC estimates the kernel, and corrects the estimate, before trusting it.
"""
EXPLAIN_NUMBERS = """\
**The numbers.** PSNR-Y (in dB, higher is better) and SSIM-Y (0 to 1, higher is better) compare the
brightness channel of a result with the sharp original, ignoring a border as wide as the scale. They need
the original, so only the labs show them. The networks were trained on round (isotropic) Gaussian blurs
within a range of widths and noise levels; outside it, IKC has to guess, and the labs say so.
"""
EXPLAIN_LIMITS = f"""\
**Limits.** Results have at most {MAX_RESULT_PIXELS:,} pixels ({MAX_RESULT_SIDE}x{MAX_RESULT_SIDE}, or
1024x576, ...): a larger input is downscaled first, and the page says so; or choose *{REGION.lower()}* and
click the photo to place a region, which is enlarged at its native resolution. A whole large photo at full
resolution: use the command line, `python -m ikc photo.jpg -o photo_x4.png --scale 4` (see the README). Uploads up to {MAX_UPLOAD.upper()}. One model job runs at a time, others wait in
a queue of {QUEUE_SIZE}. Your results are deleted an hour after your last run. Nothing leaves this server.
"""


def model_summary(results: Path, scales: list[int]) -> str:
    """What the model is, with its Gaussian8 PSNR-Y / SSIM-Y on Set5 and Set14 (measured by training.evaluate,
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


@contextmanager
def user_errors() -> Iterator[None]:
    """Show errors a user can cause (bad file, bad value, missing checkpoint) as a clear message."""
    try:
        yield
    except gr.Error:
        raise
    except (ikc.ImageError, ikc.CheckpointError, ValueError) as error:
        raise gr.Error(str(error), print_exception=False) from None


def checked_number(name: str, value: Any, low: float, high: float) -> float:
    """`value` as a float within [low, high]; ValueError naming the input otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be from {low:g} to {high:g}, got {number:g}")
    return number


def checked_whole(name: str, value: Any, low: int, high: int) -> int:
    """`value` as a whole number within [low, high]."""
    number = checked_number(name, value, low, high)
    if number != int(number):
        raise ValueError(f"{name} must be a whole number, got {number:g}")
    return int(number)


def checked_scale(value: Any) -> int:
    """`value` as one of the scales IKC supports."""
    scale = checked_whole("scale", value, min(ikc.SCALES), max(ikc.SCALES))
    if scale not in ikc.SCALES:
        raise ValueError(f"scale must be one of {', '.join(map(str, ikc.SCALES))}, got {scale}")
    return scale


def upload_path(payload: Any) -> str:
    """Server-side path of an uploaded image; API callers can name any path, so only uploads are accepted."""
    if payload is None or payload == {}:
        raise ValueError("no image: upload a photo or pick an example first")
    path = payload.get("path") if isinstance(payload, dict) else None
    if not isinstance(path, str) or not path:
        raise ValueError(f"image must be an uploaded file (from Python: gradio_client.handle_file(path)), "
                         f"got {payload!r:.80}")
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(get_upload_folder())):
        raise ValueError("image: only files uploaded to this app are read; send yours with "
                         "gradio_client.handle_file(path)")
    return str(real)


def upload_stem(payload: Any) -> str:
    """A file-name-safe stem of the uploaded file's original name."""
    name = payload.get("orig_name") if isinstance(payload, dict) else None
    return re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name or "photo").stem)[:40] or "photo"


def read_photo(payload: Any, max_pixels: int, min_size: int) -> ikc.ImageData:
    """Decode an upload with ikc.read_image; an image over `max_pixels` is downscaled, with a note saying so."""
    image = ikc.read_image(upload_path(payload), min_size=min_size)
    height, width = image.pixels.shape[:2]
    if height * width <= max_pixels:
        return image
    factor = (max_pixels / (height * width)) ** 0.5
    size = (max(min_size, int(width * factor)), max(min_size, int(height * factor)))
    pixels = np.asarray(Image.fromarray(image.pixels).resize(size, Image.Resampling.LANCZOS))
    note = (f"downscaled from {width}x{height} to {size[0]}x{size[1]} px, so that the result stays within "
            f"{MAX_RESULT_PIXELS:,} px ({MAX_RESULT_SIDE}x{MAX_RESULT_SIDE})")
    return ikc.ImageData(pixels, image.notes + [note], image.jpeg_quality)


def region_box(height: int, width: int, side: int, centre: tuple[float, float] | None) -> tuple[int, int, int, int]:
    """(top, left, rows, columns) of a square region of `side` px (smaller if the photo is), centred at the
    fractions `centre` = (x, y) of the photo (its middle when None) and moved inside it."""
    rows, columns = min(side, height), min(side, width)
    fx, fy = centre if centre is not None else (0.5, 0.5)
    top = min(max(0, round(fy * height - rows / 2)), height - rows)
    left = min(max(0, round(fx * width - columns / 2)), width - columns)
    return top, left, rows, columns


def region_view(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The photo at most PICKER_SIDE px large, with the region outlined, for picking it by a click."""
    image = Image.fromarray(pixels)
    factor = min(1.0, PICKER_SIDE / max(image.size))
    image = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                         Image.Resampling.LANCZOS)
    top, left, rows, columns = (round(v * factor) for v in box)
    draw = ImageDraw.Draw(image)
    for offset, colour in ((0, (255, 255, 255)), (2, (220, 30, 30))):
        draw.rectangle((left + offset, top + offset, left + columns - 1 - offset, top + rows - 1 - offset),
                       outline=colour, width=2)
    return np.asarray(image)


def picked_centre(height: int, width: int, click: tuple[int, int]) -> tuple[float, float]:
    """A click at pixel `click` = (x, y) of the picker's picture of a height x width photo, as fractions."""
    factor = min(1.0, PICKER_SIDE / max(height, width))
    return (min(1.0, click[0] / max(1, round(width * factor))), min(1.0, click[1] / max(1, round(height * factor))))


def restore_input(payload: Any, factor: int, mode: str, centre: tuple[float, float] | None) -> ikc.ImageData:
    """Restore's LR image: the whole photo downscaled to the pixel limit, or a region of it at native resolution,
    as large as the limit allows at this scale."""
    if mode != REGION:
        return read_photo(payload, MAX_RESULT_PIXELS // factor ** 2, MIN_LR_SIZE)
    photo = ikc.read_image(upload_path(payload), min_size=MIN_LR_SIZE)
    height, width = photo.pixels.shape[:2]
    top, left, rows, columns = region_box(height, width, MAX_RESULT_SIDE // factor, centre)
    note = f"a {columns}x{rows} px region at ({left}, {top}) of the {width}x{height} px photo, at native resolution"
    return ikc.ImageData(photo.pixels[top:top + rows, left:left + columns].copy(), photo.notes + [note],
                         photo.jpeg_quality)


def notes_line(notes: list[str]) -> str:
    """The notes on an input as one Markdown line (empty when there are none)."""
    return "**Note:** " + "; ".join(notes) + "." if notes else ""


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


def pixel_digest(pixels: np.ndarray) -> str:
    """A fingerprint of an image's pixels, to recognise a built-in example whatever its file is called."""
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes() + str(pixels.shape).encode()).hexdigest()


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


@dataclass
class Truth:
    """What the degradation lab knows: the sharp photo (cropped to a multiple of the scale) and the kernel."""

    hr: np.ndarray
    kernel: np.ndarray
    width: float  # the kernel's width, or the closest isotropic width of an anisotropic kernel
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
                self.scores[step.index] = score(step.sr, self.truth.hr, self.scale)

    def image(self, index: int) -> np.ndarray | None:
        """Step `index`'s SR image, or None while it is not rendered."""
        return unpack(self.images[index]) if index in self.images else None

    def render(self, model: ikc.IKC, index: int) -> None:
        """Render step `index`'s SR image at full size and store it, unless it is stored already."""
        if index not in self.images:
            self.record(replace(self.steps[index], sr=model.render(self.lr, self.steps[index].code)))


@dataclass
class StopSignal:
    """A tab's Stop button in one session: pressed while a run streams (or waits in the queue), the run ends
    after its current step and keeps the steps it has; Run re-arms it."""

    pressed: bool = False


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR-Y, SSIM-Y) of `sr` against `hr`, with a border of `scale` px ignored."""
    return ikc.psnr_y(sr, hr, scale), ikc.ssim_y(sr, hr, scale)


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


MIN_PSNR_SPAN, MIN_SSIM_SPAN = 2.0, 0.05  # the quality plot's axes span at least these: 0.1 dB is no cliff
PLOT_FONT = 10  # pt: legends and labels readable on a projector


def spanned(values: list[float], span: float) -> tuple[float, float]:
    """Axis limits around `values`, at least `span` wide, with a 10% margin."""
    low, high = min(values), max(values)
    half = max(high - low, span) * 0.55
    return (low + high) / 2 - half, (low + high) / 2 + half


def draw_widths(axes: Axes, run: RunResult, index: int) -> None:
    """Estimated kernel width across steps, the shown step marked (and the true width when known)."""
    indices = [s.index for s in run.steps]
    widths = [s.kernel_width for s in run.steps]
    axes.plot(indices, widths, "o-", color="tab:blue", label="estimated width")
    true_width = run.truth.width if run.truth is not None else run.known_width
    if true_width is not None:
        axes.axhline(true_width, color="tab:green", linestyle="--", label="true width")
    if index < len(run.steps):
        axes.plot([index], [widths[index]], "o", markersize=12, markerfacecolor="none", color="tab:red",
                  label=f"step {index}")
    axes.set(title="Estimated kernel width", xlabel="step", ylabel="kernel width σ (HR px)",
             xlim=(-0.5, run.iterations + 0.5),
             ylim=(0, max([4.5, *widths, true_width or 0]) + 0.5))
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend(fontsize=PLOT_FONT - 1, loc="best")


def draw_scores(axes: Axes, run: RunResult, index: int) -> None:
    """PSNR-Y and SSIM-Y of each rendered step against the truth, with bicubic as the baseline; the PSNR axis
    spans at least MIN_PSNR_SPAN dB."""
    ssim_axes = axes.twinx()
    indices = sorted(run.scores)
    psnrs = [run.scores[i][0] for i in indices]
    axes.plot(indices, psnrs, "o-", color="tab:blue", label="PSNR-Y")
    ssim_axes.plot(indices, [run.scores[i][1] for i in indices], "s--", color="tab:orange", label="SSIM-Y")
    axes.axhline(run.bicubic_psnr, color="grey", linestyle=":", label="bicubic PSNR-Y")
    if index in run.scores:
        axes.plot([index], [run.scores[index][0]], "o", markersize=12, markerfacecolor="none", color="tab:red")
    axes.set(title="Quality against the sharp original", xlabel="step", ylabel="PSNR-Y (dB)",
             xlim=(-0.5, run.iterations + 0.5), ylim=spanned([*psnrs, run.bicubic_psnr], MIN_PSNR_SPAN))
    ssim_axes.set(ylabel="SSIM-Y", ylim=spanned([run.scores[i][1] for i in indices], MIN_SSIM_SPAN))
    axes.xaxis.get_major_locator().set_params(integer=True)
    lines = axes.get_lines()[:1] + ssim_axes.get_lines() + axes.get_lines()[1:2]
    axes.legend(lines, [line.get_label() for line in lines], fontsize=PLOT_FONT - 1, loc="lower right")


def plot_figure(run: RunResult, index: int, parts: tuple[str, ...]) -> Figure:
    """A figure of the named plots ("widths", "scores") side by side, for the viewer or an export."""
    figure = Figure(figsize=(4.8 * len(parts), 3.2), dpi=100, layout="constrained")
    for axes, part in zip(figure.subplots(1, len(parts), squeeze=False)[0], parts):
        (draw_widths if part == "widths" else draw_scores)(axes, run, index)
    return figure


def step_caption(run: RunResult, index: int) -> str:
    """One Markdown line about the shown step (and a warning when the lab's settings have changed since)."""
    text = (f"**The settings have changed since this run** (true width {run.truth.width:.2f}): press Run IKC to "
            "see them. " if run.stale and run.truth is not None else "")
    if index >= len(run.steps):
        return text + f"**Step {index} of {run.iterations}** is not estimated yet."
    step = run.steps[index]
    first = "the Predictor's first guess" if run.start_width is None else "the start you chose"
    role = first if index == 0 else "after correction " + str(index)
    text += (f"**Step {index} of {run.iterations}** ({role}): estimated kernel width {step.kernel_width:.2f}, "
             f"noise level {step.noise_sigma:.1f}.")
    if index in run.scores:
        psnr, ssim = run.scores[index]
        text += f" PSNR-Y {psnr:.2f} dB, SSIM-Y {ssim:.3f}."
    if index not in run.images:
        text += " Its image is being rendered; it appears here in a moment."
    if run.truth is not None and run.truth.warning:
        text += f" {run.truth.warning}"
    return text


def estimate_picture(step: ikc.Step) -> np.ndarray:
    """The step's estimate as a picture: the Gaussian of its width (the kernel drawn back from a code off the
    Gaussians can have a dark centre after clipping, which no student recognises), captioned with width and noise."""
    return kernel_picture(ikc.gaussian_kernel(step.kernel_width),
                          caption=f"width {step.kernel_width:.2f}\nnoise {step.noise_sigma:.1f}")


def truth_picture(truth: Truth) -> np.ndarray:
    """The true kernel as a picture captioned with its width and noise level."""
    noise = f"{truth.noise_sigma:.0f}-{truth.noise_max:.0f}" if truth.noise_max is not None else \
        f"{truth.noise_sigma:.1f}"
    return kernel_picture(truth.kernel, caption=f"width {truth.width:.2f}\nnoise {noise}")


def frame_caption(run: RunResult, step: ikc.Step) -> str:
    """The line under a step's frame in the exported animation."""
    text = f"Step {step.index} of {run.iterations}: estimated width {step.kernel_width:.2f}"
    true_width = run.truth.width if run.truth is not None else run.known_width
    if true_width is not None:
        text += f" (true {true_width:.2f})"
    if step.index in run.scores:
        text += f", PSNR-Y {run.scores[step.index][0]:.2f} dB"
    return text


def export_steps(model: ikc.IKC, run: RunResult, folder: Path) -> list[Path]:
    """Render the steps not rendered yet, then write the run for a lecture: an animated GIF (image and kernel per
    step), a PNG of the curves, and the numbers per step as CSV and JSON. Returns the four files."""
    for index in range(len(run.steps)):
        run.render(model, index)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    gif = save_animation([step_frame(run.image(s.index), estimate_picture(s), frame_caption(run, s))
                          for s in run.steps], folder / "ikc_steps.gif")
    figure = folder / "ikc_curves.png"
    plot_figure(run, len(run.steps) - 1, ("widths", "scores") if run.scores else ("widths",)).savefig(figure, dpi=150)
    rows = [{**step_record(s), "psnr_y": run.scores.get(s.index, (None, None))[0],
             "ssim_y": run.scores.get(s.index, (None, None))[1]} for s in run.steps]
    record = {"scale": run.scale, "iterations": run.iterations, "steps": rows,
              "truth": None if run.truth is None else {"kernel_width": run.truth.width,
                                                       "noise_sigma": run.truth.noise_sigma,
                                                       "noise_sigma_max": run.truth.noise_max,
                                                       "bicubic_psnr_y": run.bicubic_psnr}}
    numbers = folder / "ikc_steps.json"
    numbers.write_text(json.dumps(record, indent=1) + "\n")
    table = folder / "ikc_steps.csv"
    with table.open("w", newline="") as handle:
        columns = ["step", "kernel_width", "noise_sigma", "psnr_y", "ssim_y"]
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return [gif, figure, table, numbers]


@dataclass
class Viewer:
    """The step viewer shared by Restore and the Degradation lab (truth components only in the lab)."""

    prefix: str  # the tab's name: element ids and the session's results folder
    slider: gr.Slider
    play: gr.Button
    timer: gr.Timer
    caption: gr.Markdown
    sr: gr.Image
    kernel: gr.Image
    widths: gr.Plot
    comparison: gr.ImageSlider
    download: gr.DownloadButton
    export: gr.Button
    exports: gr.File
    true_kernel: gr.Image | None = None
    scores: gr.Plot | None = None

    def step_components(self) -> list[gr.components.Component]:
        """Everything `show` updates."""
        return [c for c in (self.slider, self.caption, self.sr, self.kernel, self.widths, self.true_kernel,
                            self.scores) if c is not None]

    def show(self, run: RunResult, index: int) -> dict:
        """Updates that show step `index` of `run`, which remembers it as the step shown."""
        run.shown = index  # before its image is read: a render storing it now then sees it shown and shows it
        step = run.steps[index] if index < len(run.steps) else None
        updates = {self.slider: gr.Slider(maximum=max(run.iterations, 1), value=index),
                   self.caption: step_caption(run, index),
                   self.sr: self.picture(run, index),
                   self.kernel: estimate_picture(step) if step is not None else None,
                   self.widths: plot_figure(run, index, ("widths",))}
        if self.true_kernel is not None and run.truth is not None and not run.stale:
            updates[self.true_kernel] = gr.Image(truth_picture(run.truth), label="True kernel")
        if self.scores is not None and run.truth is not None:
            updates[self.scores] = plot_figure(run, index, ("scores",))
        return updates

    @staticmethod
    def picture(run: RunResult, index: int) -> gr.Image:
        """Step `index`'s image; while it is rendered, the image on screen stays, marked busy and labelled."""
        image = run.image(index)
        if image is not None:
            run.on_screen = index
            return gr.Image(image, label=f"Super-resolved image, step {index}", elem_classes=[])
        meanwhile = "" if run.on_screen is None else f" (showing step {run.on_screen} meanwhile)"
        return gr.Image(label=f"Rendering step {index}...{meanwhile}", elem_classes=["busy"])

    def stop(self, run: RunResult | None) -> dict:
        """Stop Play: the timer and any tick already on its way."""
        if run is not None:
            run.playing = False
        return {self.timer: gr.Timer(active=False)}

    def scrub(self, run: RunResult | None, index: float) -> dict:
        """The slider moved: show that step (what is stored, at once) and stop Play."""
        stopped = self.stop(run)
        return stopped if run is None else {**stopped, **self.show(run, min(int(index), run.iterations))}

    def play_from(self, run: RunResult | None, index: float) -> dict:
        """Play: step on from the shown step once a second (from step 0 when the last one is shown)."""
        if run is None or not run.steps:
            return self.stop(run)
        run.playing = True
        start = 0 if int(index) >= len(run.steps) - 1 else int(index)
        return {self.timer: gr.Timer(active=True), **self.show(run, start)}

    def tick(self, run: RunResult | None, index: float) -> dict:
        """A Play tick: the next step once the shown one's image is there; nothing once the user has scrubbed."""
        if run is None or not run.playing or int(index) + 1 >= len(run.steps):
            return self.stop(run)
        if int(index) not in run.images:  # Play waits while the shown step's image is being rendered
            return gr.skip()
        updates = self.show(run, int(index) + 1)
        return updates if run.playing else gr.skip()  # scrubbed while this step was drawn: the user's step stays

    def render_shown(self, run: RunResult | None) -> dict:
        """Render the shown step's missing image (the model's job) and show it; if none is missing, change nothing."""
        if run is None or run.shown >= len(run.steps) or run.shown in run.images:
            return gr.skip()
        index = run.shown
        run.render(model_for(run.scale), index)
        return self.show(run, index) if run.shown == index else gr.skip()

    def export_run(self, run: RunResult | None, request: gr.Request) -> list[str]:
        """The export button: the run's animation, curves and numbers as files to download."""
        if run is None or not run.steps:
            raise gr.Error("Run IKC first: there are no steps to export yet.", print_exception=False)
        folder = results_folder(request, self.prefix) / "export"
        return [str(path) for path in export_steps(model_for(run.scale), run, folder)]

    def final(self, run: RunResult | None) -> dict:
        """The before/after comparison and the download, once the final step is rendered (else cleared)."""
        if run is None or run.download is None:
            return {self.comparison: None, self.download: gr.DownloadButton(value=None, interactive=False)}
        return {self.comparison: (unpack(run.bicubic), run.image(run.iterations)),
                self.download: gr.DownloadButton(value=str(run.download), interactive=True)}


def build_viewer(prefix: str, with_truth: bool) -> Viewer:
    """Lay out the step viewer in the current Blocks context; element ids start with `prefix`."""
    with gr.Row():
        slider = gr.Slider(0, DEFAULT_ITERATIONS, value=0, step=1, label="Step", scale=5, elem_id=f"{prefix}-step")
        play = gr.Button("Play", scale=1, size="md", elem_id=f"{prefix}-play")
    timer = gr.Timer(1.0, active=False)
    caption = gr.Markdown("Press **Run** to see the steps here.", elem_id=f"{prefix}-caption",
                          elem_classes="step-caption")
    with gr.Row():
        sr = gr.Image(label="Super-resolved image at this step", format="png", interactive=False, height=420,
                      buttons=["download", "fullscreen"], scale=3, elem_id=f"{prefix}-sr")
        with gr.Column(scale=2):
            with gr.Row():
                true_kernel = gr.Image(label="True kernel", format="png", interactive=False, height=200,
                                       buttons=[], min_width=120) if with_truth else None
                kernel = gr.Image(label="Estimated kernel", format="png", interactive=False, height=200, buttons=[],
                                  min_width=120)
            widths = gr.Plot(format="png", show_label=False)
            scores = gr.Plot(format="png", show_label=False) if with_truth else None
    comparison = gr.ImageSlider(label="Before / after: bicubic enlargement vs. final step", format="png",
                                interactive=False, buttons=["fullscreen"], max_height=420)
    with gr.Row():
        download = gr.DownloadButton("Download the final result (PNG)", interactive=False,
                                     elem_id=f"{prefix}-download")
        export = gr.Button("Export the steps: animation (GIF), curves (PNG), numbers (CSV, JSON)",
                           elem_id=f"{prefix}-export")
    exports = gr.File(label="Exported steps", file_count="multiple", interactive=False, elem_id=f"{prefix}-exports")
    return Viewer(prefix, slider, play, timer, caption, sr, kernel, widths, comparison, download, export, exports,
                  true_kernel, scores)


def wire_viewer(viewer: Viewer, state: gr.State) -> None:
    """Slider scrubbing and Play show what is stored at once, never waiting for the model; a chained event then
    renders a missing image once, in the model's slot like runs, and keeps it."""
    outputs = viewer.step_components()

    light = {"inputs": [state, viewer.slider], "outputs": [viewer.timer, *outputs], "concurrency_limit": None,
             "api_visibility": "private", "show_progress": "hidden"}
    looks = [viewer.slider.input(viewer.scrub, trigger_mode="always_last", **light),
             viewer.play.click(viewer.play_from, **light), viewer.timer.tick(viewer.tick, **light)]
    for look in looks:  # always_last: looks while a render is pending collapse into one more
        look.then(viewer.render_shown, state, outputs, trigger_mode="always_last", concurrency_id="model",
                  concurrency_limit=1, api_visibility="private", show_progress="hidden")
    viewer.export.click(viewer.export_run, state, viewer.exports, concurrency_id="model", concurrency_limit=1,
                        api_visibility="private", show_progress="minimal")


def stream_run(viewer: Viewer, state: gr.State, progress: gr.Markdown, model: ikc.IKC, run: RunResult,
               folder: Path, stem: str, notes: list[str], fill_in: bool, stop: StopSignal) -> Iterator[dict]:
    """UI updates while `run` is computed: each step as it is estimated, the final result, then with `fill_in`
    every step between rendered (else the viewer renders those when looked at). Stop ends it after a step."""
    if stop.pressed:
        yield {progress: "Stopped before it started."}
        return
    started = time.monotonic()
    yield {progress: "Estimating the kernel...", viewer.sr: gr.Image(None, label="Rendering step 0...",
                                                                      elem_classes=["busy"]), **viewer.final(None)}
    for index, line in correction_stream(model, run, fill_in):
        updates = {state: run, progress: f"{line} ({time.monotonic() - started:.1f} s)."}
        if index == run.iterations and run.download is None:
            run.download = save_download(run, folder, stem)
            updates |= viewer.show(run, index) | viewer.final(run)
        elif len(run.steps) <= run.iterations:
            updates |= viewer.show(run, index)
        yield updates
        if stop.pressed:
            yield {progress: f"Stopped after step {len(run.steps) - 1} of {run.iterations} "
                             f"({time.monotonic() - started:.1f} s); the steps so far stay viewable."}
            return
    done = {progress: f"Done in {time.monotonic() - started:.1f} s. {notes_line(notes)}"}
    yield (done | viewer.show(run, run.iterations)) if fill_in else done  # the lab's scores plot: every step


def arm_stop(stop: StopSignal) -> gr.Button:
    """Run pressed: Stop becomes available and forgets earlier presses."""
    stop.pressed = False
    return gr.Button(interactive=True)


def press_stop(stop: StopSignal) -> tuple[gr.Button, str]:
    """Stop pressed: the run ends after its current step (stopping is not an error)."""
    stop.pressed = True
    return gr.Button(interactive=False), "Stopping after the current step..."


def wire_run(button: gr.Button, stop_button: gr.Button, stop: gr.State, progress: gr.Markdown, handler: Any,
             inputs: list[gr.components.Component], outputs: list[gr.components.Component]) -> None:
    """Run streams `handler` in the model's slot; Stop, enabled only meanwhile, ends it after the current step
    with the steps so far kept, instead of cancelling it (which shows an error)."""
    light = {"concurrency_limit": None, "api_visibility": "private", "show_progress": "hidden"}
    running = button.click(arm_stop, stop, stop_button, **light).then(
        handler, [*inputs, stop], outputs, preprocess=False, concurrency_id="model", concurrency_limit=1,
        api_visibility="private", show_progress="minimal", show_progress_on=progress)
    running.then(lambda: gr.Button(interactive=False), None, stop_button, **light)
    stop_button.click(press_stop, stop, [stop_button, progress], **light)


def stop_controls(run_label: str, elem_id: str) -> tuple[gr.Button, gr.Button, gr.State]:
    """Run and a small Stop button (disabled while nothing runs), with the session's stop signal."""
    with gr.Row():
        run_button = gr.Button(run_label, variant="primary", scale=3, elem_id=elem_id)
        stop_button = gr.Button("Stop", variant="stop", size="sm", scale=1, interactive=False,
                                elem_id=f"{elem_id.split('-')[0]}-stop")
    return run_button, stop_button, gr.State(lambda: StopSignal())  # one per session


def step_record(step: ikc.Step) -> dict:
    """A step as JSON-ready data for the API."""
    return {"step": step.index, "kernel_width": round(step.kernel_width, 4), "noise_sigma": round(step.noise_sigma, 4),
            "code": [round(float(v), 6) for v in step.code], "kernel": np.round(step.kernel, 6).tolist()}


def checked_start(value: Any) -> float | None:
    """The width IKC starts from: None (0 or empty: the Predictor's guess) or a width the labs offer."""
    if value is None or value == "" or value == 0:
        return None
    width = checked_number("starting width", value, 0, WIDTH_LIMITS[1])
    if width < WIDTH_LIMITS[0]:
        raise ValueError(f"starting width must be 0 (the Predictor's guess) or {WIDTH_LIMITS[0]:g}-"
                         f"{WIDTH_LIMITS[1]:g}, got {width:g}")
    return width


def checked_jpeg_quality(value: Any) -> int | None:
    """A JPEG quality from the page or the API: None, empty or 0 mean none (lossless); else 1-100."""
    if value is None or value == "" or value == 0:
        return None
    return checked_whole("JPEG quality", value, *ikc.JPEG_QUALITIES)


def checked_noise_max(noise: float, noise_max: Any) -> float | None:
    """The highest level of region-varying noise (None: one level for the whole image), at least `noise`."""
    if noise_max is None or noise_max == "":
        return None
    return checked_number("highest block noise sigma", noise_max, noise, MAX_BLOCK_NOISE)


def lab_degradation(payload: Any, width: Any, anisotropic: bool, sigma_x: Any, sigma_y: Any, angle: Any,
                    noise: Any, by_region: bool, noise_max: Any, jpeg: Any,
                    scale: Any) -> tuple[np.ndarray, Truth, list[str], int]:
    """Degrade the lab's sharp photo as asked: (LR image, truth, notes on the input, scale)."""
    scale = checked_scale(scale)
    noise = checked_number("noise sigma", noise, 0, MAX_NOISE)
    highest = checked_noise_max(noise, noise_max) if by_region else None
    quality = checked_jpeg_quality(jpeg)
    if anisotropic:
        kernel = ikc.anisotropic_gaussian_kernel(checked_number("sigma_x", sigma_x, *WIDTH_LIMITS),
                                                 checked_number("sigma_y", sigma_y, *WIDTH_LIMITS),
                                                 checked_number("angle", angle, -180, 180))
    else:
        kernel = ikc.gaussian_kernel(checked_number("kernel width", width, *WIDTH_LIMITS))
    photo = read_photo(payload, MAX_RESULT_PIXELS, MIN_LR_SIZE * scale)
    lr = ikc.degrade_image(photo.pixels, kernel, scale, noise, jpeg_quality=quality, noise_sigma_max=highest)
    closest = float(ikc.estimate_width(kernel))
    truth = Truth(ikc.modcrop(photo.pixels, scale), kernel, closest, noise,
                  range_warning(scale, closest, bool(anisotropic), noise, quality, highest), highest)
    return lr, truth, photo.notes, scale


def range_warning(scale: int, width: float, anisotropic: bool, noise: float, jpeg_quality: int | None = None,
                  noise_max: float | None = None) -> str:
    """Why a degradation lies outside what the `scale` model was trained on ("" when it does not)."""
    ranges = training_range(scale)
    if ranges is None:
        return ""
    (low, high), (noise_low, noise_high) = ranges
    reasons = ["the kernel is anisotropic"] if anisotropic else []
    if not low <= width <= high:
        reasons.append(f"width {width:.2f} is outside {low:g}-{high:g}")
    if not noise_low <= noise <= noise_high:
        reasons.append(f"noise {noise:g} is outside {noise_low:g}-{noise_high:g}")
    if noise_max is not None:
        reasons.append(f"the noise varies by region, from {noise:g} to {noise_max:g} (IKC assumes one level"
                       + (f"; above {noise_high:g} none was seen)" if noise_max > noise_high else ")"))
    if jpeg_quality is not None:
        reasons.append(f"JPEG compression at quality {jpeg_quality} (training images were stored losslessly)")
    return ("**Outside the training range** (" + "; ".join(reasons) + "): IKC has never seen such a blur, "
            "so watch how it copes.") if reasons else ""


def crop_pair(lr: np.ndarray, hr: np.ndarray, scale: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The central size x size crop of `lr` and the matching region of `hr`."""
    top, left = max(0, (lr.shape[0] - size) // 2), max(0, (lr.shape[1] - size) // 2)
    return (lr[top:top + size, left:left + size],
            hr[top * scale:(top + size) * scale, left * scale:(left + size) * scale])


def assumed_widths(true_width: float) -> list[float]:
    """The row of assumed kernel widths around the true one, none narrower than the labs offer."""
    return [round(true_width + offset, 2) for offset in MISMATCH_OFFSETS if true_width + offset >= WIDTH_LIMITS[0]]


def mismatch_figure(rows: list[tuple[float, float]], true_width: float, bicubic_psnr: float,
                    path: list[tuple[float, float]]) -> Figure:
    """PSNR-Y against the assumed width, with the true width marked and IKC's path (width, PSNR-Y per step)."""
    figure = Figure(figsize=(6.4, 3.0), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.plot([w for w, _ in rows], [p for _, p in rows], "o-", color="tab:blue", label="SFTMD with assumed width")
    axes.axvline(true_width, color="tab:green", linestyle="--", label=f"true width {true_width:.2f}")
    axes.axhline(bicubic_psnr, color="grey", linestyle=":", label="bicubic")
    if path:
        axes.plot(*zip(*path), ".-", color="tab:orange", alpha=0.8, label=f"IKC's path, steps 0-{len(path) - 1}")
        axes.annotate("0", path[0], textcoords="offset points", xytext=(-4, 6), color="tab:orange",
                      fontsize=PLOT_FONT)
        axes.plot(*path[-1], "*", markersize=14, color="tab:orange", label=f"IKC result, width {path[-1][0]:.2f}")
    axes.set(title="PSNR-Y against the assumed kernel width",
             xlabel="assumed kernel width σ (HR px; too small ... too large)", ylabel="PSNR-Y (dB)")
    figure.legend(fontsize=PLOT_FONT - 1, loc="outside right upper")
    return figure


def mismatch_tag(width: float, true_width: float) -> str:
    """A caption tag that marks the true width in the row of assumed widths."""
    return " (true)" if abs(width - true_width) < 1e-6 else ""


def photo_input(label: str, elem_id: str, height: int) -> gr.Image:
    """An image upload whose events get the raw file, so that ikc.read_image judges every file."""
    return gr.Image(label=label, type="filepath", image_mode=None, format="png", sources=["upload", "clipboard"],
                    height=height, elem_id=elem_id)


def build_restore(scales: list[int], examples: list[str], known_widths: dict[str, float]) -> None:
    """The Restore tab: blind SR of a low-resolution photo, step by step."""
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            image = photo_input("Low-resolution photo", "restore-input", 260)
            gr.Examples(examples, inputs=image, label=f"Built-in examples (blurred with width {EXAMPLE_WIDTH:g}, "
                        f"shrunk x{EXAMPLE_SCALE})", elem_id="restore-examples", api_visibility="private")
            notice = gr.Markdown(elem_id="restore-notice")
            mode = gr.Radio([WHOLE, REGION], value=WHOLE, label="Enlarge", elem_id="restore-mode")
            picker = gr.Image(label="Region to enlarge (click to move it)", interactive=False, visible=False,
                              format="jpeg", buttons=[], elem_id="restore-picker")
            centre = gr.State(None)
            scale = gr.Radio(scales, value=max(scales), label="Scale (enlargement factor)")
            iterations = gr.Slider(0, MAX_ITERATIONS, value=DEFAULT_ITERATIONS, step=1, label="Correction steps")
            run_button, stop_button, stop = stop_controls("Run", "restore-run")
            progress = gr.Markdown(elem_id="restore-progress")
        with gr.Column(scale=5):
            viewer = build_viewer("restore", with_truth=False)
    state = gr.State(None, time_to_live=SESSION_TTL, delete_callback=delete_run_files)
    wire_viewer(viewer, state)

    def describe(payload: Any, scale_value: Any, mode_value: str, centre_value: tuple[float, float] | None) -> dict:
        if payload is None:
            return {notice: "", picker: gr.Image(None, visible=False)}
        try:
            factor = checked_scale(scale_value)
            photo = restore_input(payload, factor, mode_value, centre_value)
        except (ikc.ImageError, ValueError) as error:
            return {notice: f"**This input cannot be used:** {error}", picker: gr.Image(None, visible=False)}
        height, width = photo.pixels.shape[:2]
        text = f"{width}x{height} px, result {width * factor}x{height * factor} px. {notes_line(photo.notes)}"
        if mode_value != REGION:
            return {notice: text, picker: gr.Image(None, visible=False)}
        whole = ikc.read_image(upload_path(payload)).pixels
        box = region_box(*whole.shape[:2], MAX_RESULT_SIDE // factor, centre_value)
        return {notice: text + " Click the picture to move the region.", picker: gr.Image(
            region_view(whole, box), visible=True)}

    def move_region(payload: Any, event: gr.SelectData) -> tuple[float, float]:
        """A click on the picker: the region's new centre, as fractions of the photo's width and height."""
        height, width = ikc.read_image(upload_path(payload)).pixels.shape[:2]
        return picked_centre(height, width, event.index)

    def restore(payload: Any, scale_value: Any, mode_value: str, centre_value: tuple[float, float] | None,
                steps: Any, stop_signal: StopSignal, request: gr.Request) -> Iterator[dict]:
        with user_errors():
            factor = checked_scale(scale_value)
            count = checked_whole("correction steps", steps, 0, MAX_ITERATIONS)
            photo = restore_input(payload, factor, mode_value, centre_value)
            model = model_for(factor)
            known = known_widths.get(pixel_digest(photo.pixels)) if factor == EXAMPLE_SCALE else None
            run = RunResult(photo.pixels, factor, count, known_width=known)
            yield from stream_run(viewer, state, progress, model, run, results_folder(request, "restore"),
                                  upload_stem(payload), photo.notes, fill_in=False, stop=stop_signal)

    light = {"preprocess": False, "api_visibility": "private", "show_progress": "hidden"}
    image.change(lambda: None, None, centre, **light)  # a new photo: its region starts in the middle
    gr.on([image.change, scale.change, mode.change, centre.change], describe, [image, scale, mode, centre],
          [notice, picker], trigger_mode="always_last", **light)
    picker.select(move_region, image, centre, **light)
    wire_run(run_button, stop_button, stop, progress, restore, [image, scale, mode, centre, iterations],
             [state, progress, *viewer.step_components(), viewer.comparison, viewer.download])


def sharp_photo_with_examples(prefix: str, examples: list[str]) -> gr.Image:
    """The sharp-photo input of a lab, with the built-in photos as examples under it."""
    image = photo_input("Sharp photo", f"{prefix}-input", 220)
    gr.Examples(examples, inputs=image, label="Built-in photos", elem_id=f"{prefix}-examples", api_visibility="private")
    return image


def classroom_preset(examples: list[str]) -> list[Any]:
    """The lab's settings for a class: a built-in photo blurred with a known width, IKC started far from it."""
    photo = next(path for path in examples if Path(path).stem == CLASSROOM["photo"])
    return [photo, CLASSROOM["width"], False, 0, False, 0, CLASSROOM["scale"], CLASSROOM["start"]]


def zoom_box(hr: np.ndarray, side: int) -> tuple[int, int, int]:
    """(top, left, size) of the most textured square of about `side` px in `hr`: where softness and ringing show."""
    size = min(side, *hr.shape[:2])
    top, left = textured_windows(to_tensor(hr), size, 1)[0]
    return top, left, size


def zoomed(image: np.ndarray, box: tuple[int, int, int], factor: int = 3) -> np.ndarray:
    """The box of `image` enlarged `factor` times with nearest-neighbour, so pixels stay visible."""
    top, left, size = box
    return np.kron(image[top:top + size, left:left + size], np.ones((factor, factor, 1), np.uint8))


def side_by_side(model: ikc.IKC, run: RunResult) -> list[tuple[np.ndarray, str]]:
    """The lab's comparison: bicubic, SFTMD told the true kernel, the Predictor only (step 0) and IKC's final step,
    PSNR-Y / SSIM-Y in each caption, then the same zoomed on the most textured patch."""
    truth = run.truth
    told = model.super_resolve(run.lr, kernel=truth.kernel, noise_sigma=truth.noise_sigma)
    images = [(unpack(run.bicubic), "bicubic"), (told, "SFTMD told the true kernel"),
              (run.image(0), "Predictor only (step 0)"), (run.image(run.iterations), f"IKC, step {run.iterations}")]
    box = zoom_box(truth.hr, ZOOM_SIDE)
    items = [(image, f"{name}: {psnr:.2f} dB / {ssim:.3f}")
             for image, name in images for psnr, ssim in [score(image, truth.hr, run.scale)]]
    return items + [(zoomed(image, box), f"zoom: {name}") for image, name in images]


def build_lab(scales: list[int], examples: list[str]) -> None:
    """The Degradation lab: blur a sharp photo with a known kernel, then watch IKC estimate it."""
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            image = sharp_photo_with_examples("lab", examples)
            width = gr.Slider(*WIDTH_LIMITS, value=2.0, step=0.05, label="Kernel width (sigma)")
            with gr.Accordion("Advanced: anisotropic kernel", open=False):
                anisotropic = gr.Checkbox(False, label="Use an anisotropic kernel (never seen in training)")
                sigma_x = gr.Slider(*WIDTH_LIMITS, value=1.0, step=0.05, label="sigma_x")
                sigma_y = gr.Slider(*WIDTH_LIMITS, value=3.0, step=0.05, label="sigma_y")
                angle = gr.Slider(-90, 90, value=30, step=1, label="angle (degrees)")
            noise = gr.Slider(0, MAX_NOISE, value=0, step=0.5, label="Noise sigma (0-255 scale)")
            with gr.Accordion("Advanced: noise that varies by region", open=False):
                by_region = gr.Checkbox(False, label="Each 8x8-px block of the LR image gets its own noise level, "
                                                     "drawn between the noise sigma above and the highest below")
                noise_max = gr.Slider(0, MAX_BLOCK_NOISE, value=40, step=0.5,
                                      label="Highest block noise sigma (training went up to 25)")
            jpeg = gr.Slider(0, 95, value=0, step=1, label="JPEG quality of the LR image (0: none, stored losslessly)",
                             elem_id="lab-jpeg")
            scale = gr.Radio(scales, value=max(scales), label="Scale")
            lr_view = gr.Image(label="Low-resolution input (what IKC sees)", format="png", interactive=False,
                               height=200, buttons=["download"])
            lr_note = gr.Markdown(elem_id="lab-lr-note")
            iterations = gr.Slider(0, MAX_ITERATIONS, value=DEFAULT_ITERATIONS, step=1, label="Correction steps")
            start = gr.Slider(0, WIDTH_LIMITS[1], value=0, step=0.05, elem_id="lab-start",
                              label="Start IKC from kernel width (0: the Predictor's guess)")
            preset = gr.Button(f"Classroom preset: width {CLASSROOM['width']:g}, IKC starts from "
                               f"{CLASSROOM['start']:g}", size="sm", elem_id="lab-preset")
            run_button, stop_button, stop = stop_controls("Run IKC", "lab-run")
            progress = gr.Markdown(elem_id="lab-progress")
        with gr.Column(scale=5):
            viewer = build_viewer("lab", with_truth=True)
            compared = gr.Gallery(label="Side by side after the run: PSNR-Y / SSIM-Y, then a zoom on the most "
                                        "textured patch", format="png", columns=4, height="auto",
                                  object_fit="contain", elem_id="lab-side-by-side")
    state = gr.State(None, time_to_live=SESSION_TTL, delete_callback=delete_run_files)
    wire_viewer(viewer, state)
    settings = [image, width, anisotropic, sigma_x, sigma_y, angle, noise, by_region, noise_max, jpeg, scale]

    def preview(run: RunResult | None, *values: Any) -> dict:
        if values[0] is None:
            return {lr_view: None, lr_note: ""}
        try:
            lr, truth, notes, _ = lab_degradation(*values)
        except (ikc.ImageError, ValueError) as error:
            return {lr_view: None, lr_note: f"**This input cannot be used:** {error}"}
        text = f"LR image {lr.shape[1]}x{lr.shape[0]} px. {notes_line(notes)} {truth.warning}"
        updates = {lr_view: lr, lr_note: text}
        if run is None:
            return updates | {viewer.true_kernel: gr.Image(truth_picture(truth), label="True kernel")}
        run.stale = True  # the steps on screen stay, marked as those of the earlier settings
        return updates | {viewer.caption: step_caption(run, run.shown),
                          viewer.true_kernel: gr.Image(truth_picture(truth), label="True kernel (new settings)")}

    def run_lab(payload: Any, width_value: Any, anisotropic_value: bool, sigma_x_value: Any, sigma_y_value: Any,
                angle_value: Any, noise_value: Any, by_region_value: bool, noise_max_value: Any, jpeg_value: Any,
                scale_value: Any, steps: Any, start_value: Any, stop_signal: StopSignal,
                request: gr.Request) -> Iterator[dict]:
        with user_errors():
            lr, truth, notes, factor = lab_degradation(payload, width_value, anisotropic_value, sigma_x_value,
                                                       sigma_y_value, angle_value, noise_value, by_region_value,
                                                       noise_max_value, jpeg_value, scale_value)
            count = checked_whole("correction steps", steps, 0, MAX_ITERATIONS)
            start_width = checked_start(start_value)
            model = model_for(factor)
            run = RunResult(lr, factor, count, truth, start_width=start_width)
            yield {lr_view: lr, viewer.true_kernel: truth_picture(truth)}
            # every step rendered: the scores plot compares them all with the sharp original
            yield {compared: None}
            yield from stream_run(viewer, state, progress, model, run, results_folder(request, "lab"),
                                  upload_stem(payload), notes, fill_in=True, stop=stop_signal)
            if run.iterations in run.images and not stop_signal.pressed:
                yield {compared: side_by_side(model, run)}

    gr.on([image.change, width.release, anisotropic.change, sigma_x.release, sigma_y.release, angle.release,
           noise.release, by_region.change, noise_max.release, jpeg.release, scale.change], preview,
          [state, *settings], [lr_view, lr_note, viewer.caption, viewer.true_kernel], preprocess=False,
          trigger_mode="always_last", api_visibility="private", show_progress="hidden")
    preset.click(lambda: classroom_preset(examples), None, [image, width, anisotropic, noise, by_region, jpeg, scale,
                                                            start], api_visibility="private", show_progress="hidden")
    wire_run(run_button, stop_button, stop, progress, run_lab, [*settings, iterations, start],
             [state, progress, lr_view, compared, *viewer.step_components(), viewer.comparison, viewer.download])


def build_mismatch(scales: list[int], examples: list[str]) -> None:
    """The Kernel-mismatch lab: SFTMD told a row of wrong widths, as in the paper's Figure 2."""
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            image = sharp_photo_with_examples("mismatch", examples)
            true_width = gr.Slider(0.4, 4.0, value=2.0, step=0.05, label="True kernel width")
            scale = gr.Radio(scales, value=max(scales), label="Scale")
            start = gr.Slider(0, WIDTH_LIMITS[1], value=0, step=0.05, elem_id="mismatch-start",
                              label="Then IKC starts from kernel width (0: the Predictor's guess)")
            run_button = gr.Button("Compare assumed widths", variant="primary", elem_id="mismatch-run")
            progress = gr.Markdown(elem_id="mismatch-progress")
        with gr.Column(scale=5):
            gallery = gr.Gallery(label=f"SFTMD told widths from too small to too large: assumed width, PSNR-Y "
                                       f"(central {MISMATCH_CROP}x{MISMATCH_CROP} LR px)",
                                 format="png", columns=5, height="auto", object_fit="contain")
            curve = gr.Plot(format="png", show_label=False)
            summary = gr.Markdown(elem_id="mismatch-summary")

    def compare(payload: Any, width_value: Any, scale_value: Any, start_value: Any) -> Iterator[dict]:
        with user_errors():
            factor = checked_scale(scale_value)
            width = checked_number("true kernel width", width_value, 0.4, 4.0)
            start_width = checked_start(start_value)
            photo = read_photo(payload, MAX_RESULT_PIXELS, MIN_LR_SIZE * factor)
            lr = ikc.degrade_image(photo.pixels, ikc.gaussian_kernel(width), factor)
            lr, hr = crop_pair(lr, ikc.modcrop(photo.pixels, factor), factor, MISMATCH_CROP)
            model = model_for(factor)
            bicubic_psnr = ikc.psnr_y(ikc.upscale_bicubic(lr, factor), hr, factor)
            items: list[tuple[np.ndarray, str]] = []
            rows: list[tuple[float, float]] = []
            for assumed in assumed_widths(width):
                sr = model.super_resolve(lr, kernel=ikc.gaussian_kernel(assumed))
                rows.append((assumed, ikc.psnr_y(sr, hr, factor)))
                items.append((sr, f"{assumed:.2f}{mismatch_tag(assumed, width)}: {rows[-1][1]:.2f} dB"))
                yield {gallery: items, curve: mismatch_figure(rows, width, bicubic_psnr, []),
                       progress: f"SFTMD with width {assumed:.2f} done.", summary: notes_line(photo.notes)}
            best = max(rows, key=lambda row: row[1])
            text = (f"Best PSNR-Y at assumed width {best[0]:.2f} (true width {width:.2f}; "
                    f"bicubic {bicubic_psnr:.2f} dB).")

            path: list[tuple[float, float]] = []
            if model.blind:
                init = None if start_width is None else model.code_for(ikc.gaussian_kernel(start_width))
                path = [(step.kernel_width, ikc.psnr_y(step.sr, hr, factor))
                        for step in model.run(lr, DEFAULT_ITERATIONS, init_code=init, render="all")]
                origin = "the Predictor's guess" if start_width is None else f"width {start_width:.2f}"
                text += (f" IKC, not told the width, went from {origin} ({path[0][0]:.2f}, {path[0][1]:.2f} dB) to "
                         f"{path[-1][0]:.2f} in {DEFAULT_ITERATIONS} steps ({path[-1][1]:.2f} dB): the orange path.")
            items.append((hr, "sharp original"))
            yield {gallery: items, curve: mismatch_figure(rows, width, bicubic_psnr, path), progress: "Done.",
                   summary: f"{text} {notes_line(photo.notes)}"}

    run_button.click(compare, [image, true_width, scale, start], [gallery, curve, progress, summary], preprocess=False,
                     concurrency_id="model", concurrency_limit=1, api_visibility="private",
                     show_progress="minimal", show_progress_on=progress)


class AnyImagePayload(GradioRootModel):
    """An image file, sent with gradio_client.handle_file(path); anything else is answered with a clear error."""

    root: ImageData | Any = None


def build_api() -> None:
    """The named endpoints /degrade and /super_resolve, on hidden components."""
    with gr.Row(visible=False):
        image = gr.Image(type="filepath", image_mode=None, format="png", label="image")
        # gradio still vets uploaded files, but a payload of another type now reaches the endpoints, whose
        # upload_path says what is wrong (gradio's own validation would answer only "error")
        image.data_model = AnyImagePayload
        width = gr.Number(2.0, label="kernel_width")
        noise = gr.Number(0.0, label="noise_sigma")
        scale = gr.Number(4, label="scale", precision=0)
        jpeg = gr.Number(None, label="jpeg_quality", precision=0)
        noise_max = gr.Number(None, label="noise_sigma_max")
        iterations = gr.Number(DEFAULT_ITERATIONS, label="iterations", precision=0)
        lr_out = gr.Image(format="png", label="lr_image")
        sr_out = gr.Image(format="png", label="sr_image")
        info = gr.JSON(label="info")
        degrade_button, sr_button = gr.Button(), gr.Button()

    def degrade(payload: Any, width_value: Any, noise_value: Any, scale_value: Any, jpeg_value: Any = None,
                noise_max_value: Any = None) -> tuple[np.ndarray, dict]:
        """Blur, downscale and add noise to a sharp photo (with noise_sigma_max: a level per 8x8-px LR block,
        between noise_sigma and it), then save it as JPEG when a quality is given: (LR image, info)."""
        with user_errors():
            factor = checked_scale(scale_value)
            kernel_width = checked_number("kernel width", width_value, *WIDTH_LIMITS)
            noise_sigma = checked_number("noise sigma", noise_value, 0, MAX_NOISE)
            highest = checked_noise_max(noise_sigma, noise_max_value)
            quality = checked_jpeg_quality(jpeg_value)
            photo = read_photo(payload, MAX_RESULT_PIXELS, MIN_LR_SIZE * factor)
            lr = ikc.degrade_image(photo.pixels, ikc.gaussian_kernel(kernel_width), factor, noise_sigma,
                                   jpeg_quality=quality, noise_sigma_max=highest)
            return lr, {"kernel_width": kernel_width, "noise_sigma": noise_sigma, "noise_sigma_max": highest,
                        "scale": factor, "jpeg_quality": quality, "lr_size": [lr.shape[1], lr.shape[0]],
                        "notes": photo.notes}

    def super_resolve(payload: Any, scale_value: Any, iterations_value: Any) -> Iterator[tuple[Any, dict]]:
        """Blind SR, streaming each step: (final SR image once ready, per-step data so far)."""
        with user_errors():
            factor = checked_scale(scale_value)
            count = checked_whole("iterations", iterations_value, 0, MAX_ITERATIONS)
            photo = read_photo(payload, MAX_RESULT_PIXELS // factor ** 2, MIN_LR_SIZE)
            records: list[dict] = []
            for step in model_for(factor).steps(photo.pixels, count, render="last"):
                records.append(step_record(step))
                yield step.sr, {"scale": factor, "lr_size": [photo.pixels.shape[1], photo.pixels.shape[0]],
                                "notes": photo.notes, "steps": records}

    degrade_button.click(degrade, [image, width, noise, scale, jpeg, noise_max], [lr_out, info], api_name="degrade",
                         preprocess=False)
    sr_button.click(super_resolve, [image, scale, iterations], [sr_out, info], api_name="super_resolve",
                    preprocess=False, concurrency_id="model", concurrency_limit=1)


CSS = """
.step-caption { min-height: 3em; }
.busy img { opacity: 0.45; transition: opacity 0.2s; }
.busy label, .busy .label { animation: busy-pulse 1.2s ease-in-out infinite; }
@keyframes busy-pulse { 50% { opacity: 0.4; } }
"""


def build_app() -> gr.Blocks:
    """The whole page: status, three tabs with their explanations, and the API endpoints."""
    ikc.use_available_cpus()
    scales, problems = load_models(ikc.available_scales(CHECKPOINT_DIR))
    for scale, problem in problems.items():
        print(f"IKC Studio: x{scale} cannot run: {problem}", file=sys.stderr)
    restore_examples, sharp_examples, known_widths = example_files()
    with gr.Blocks(title="IKC Studio", analytics_enabled=False, delete_cache=(SESSION_TTL, SESSION_TTL)) as demo:
        gr.Markdown("# IKC Studio\nBlind super-resolution with Iterative Kernel Correction (Gu et al., CVPR 2019): "
                    "enlarge a photo while estimating, step by step, how it was blurred. A small model trained on a "
                    "CPU: *About the model* compares it with the paper's.")
        gr.Markdown(checkpoint_status(scales, problems), elem_id="checkpoint-status")
        offered = scales or list(ikc.SCALES)
        with gr.Tab("Restore"):
            with gr.Accordion("How it works", open=False):
                gr.Markdown(EXPLAIN_KERNEL + "\n" + EXPLAIN_STEPS + "\n" + EXPLAIN_LIMITS)
            build_restore(offered, restore_examples, known_widths)
        with gr.Tab("Degradation lab"):
            with gr.Accordion("How it works", open=False):
                gr.Markdown("Here the blur is known: pick a sharp photo and a kernel, and compare IKC's estimate with "
                            "the truth at every step.\n\n" + EXPLAIN_KERNEL + "\n" + EXPLAIN_NUMBERS)
            build_lab(offered, sharp_examples)
        with gr.Tab("Kernel-mismatch lab"):
            with gr.Accordion("How it works", open=True):
                gr.Markdown(EXPLAIN_MISMATCH + "\nThe photo is blurred with the true width and shrunk; SFTMD then "
                            "enlarges it once for each assumed width, without any estimation.")
            build_mismatch(offered, sharp_examples)
        with gr.Tab("About the model"):
            gr.Markdown(model_summary(RESULTS, offered), elem_id="model-summary")
        build_api()
    return demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)


demo = build_app()

if __name__ == "__main__":
    demo.launch(css=CSS, max_file_size=MAX_UPLOAD, show_error=True, state_session_capacity=MAX_SESSIONS)
