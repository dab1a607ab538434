"""The Kernel-mismatch lab: SFTMD told a row of wrong widths, as in the paper's Figure 2."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
import numpy as np

import ikc
from ikc.pipeline import MIN_LR_SIZE

from . import models
from .figures import mismatch_figure
from .inputs import checked_number, checked_scale, checked_start, notes_line, read_photo, user_errors
from .lab import sharp_photo_with_examples
from .settings import DEFAULT_ITERATIONS, MAX_RESULT_PIXELS, MISMATCH_CROP, MISMATCH_OFFSETS, WIDTH_LIMITS


def crop_pair(lr: np.ndarray, hr: np.ndarray, scale: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The central size x size crop of `lr` and the matching region of `hr`."""
    top, left = max(0, (lr.shape[0] - size) // 2), max(0, (lr.shape[1] - size) // 2)
    return (lr[top:top + size, left:left + size],
            hr[top * scale:(top + size) * scale, left * scale:(left + size) * scale])


def assumed_widths(true_width: float) -> list[float]:
    """The row of assumed kernel widths around the true one, none narrower than the labs offer."""
    return [round(true_width + offset, 2) for offset in MISMATCH_OFFSETS if true_width + offset >= WIDTH_LIMITS[0]]


def mismatch_tag(width: float, true_width: float) -> str:
    """A caption tag that marks the true width in the row of assumed widths."""
    return " (true)" if abs(width - true_width) < 1e-6 else ""


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
            model = models.model_for(factor)
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

