"""Figures and pictures: width and quality plots, the mismatch curve, kernel pictures, zoomed patches, and the
export of a run (animation, curves, numbers)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import ikc
from ikc.imageio import to_tensor
from ikc.pipeline import textured_windows
from ikc.visualize import kernel_picture, save_animation, step_frame

from .session import RunResult, Truth, step_record

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


def zoom_box(hr: np.ndarray, side: int) -> tuple[int, int, int]:
    """(top, left, size) of the most textured square of about `side` px in `hr`: where softness and ringing show."""
    size = min(side, *hr.shape[:2])
    top, left = textured_windows(to_tensor(hr), size, 1)[0]
    return top, left, size


def zoomed(image: np.ndarray, box: tuple[int, int, int], factor: int = 3) -> np.ndarray:
    """The box of `image` enlarged `factor` times with nearest-neighbour, so pixels stay visible."""
    top, left, size = box
    return np.kron(image[top:top + size, left:left + size], np.ones((factor, factor, 1), np.uint8))

