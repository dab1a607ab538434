"""The Degradation lab: blur a sharp photo with a known kernel, then watch IKC estimate it."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

import ikc
from ikc.pipeline import MIN_LR_SIZE

from . import models
from .figures import truth_picture, zoom_box, zoomed
from .inputs import (
    checked_jpeg_quality,
    checked_noise_max,
    checked_number,
    checked_scale,
    checked_start,
    checked_whole,
    notes_line,
    photo_input,
    read_photo,
    upload_stem,
    user_errors,
)
from .models import training_range
from .session import RunResult, StopSignal, Truth, delete_run_files, jpeg_note, results_folder, unpack
from .settings import (
    CLASSROOM,
    DEFAULT_ITERATIONS,
    MAX_BLOCK_NOISE,
    MAX_ITERATIONS,
    MAX_NOISE,
    MAX_RESULT_PIXELS,
    SESSION_TTL,
    WIDTH_LIMITS,
    ZOOM_SIDE,
)
from .viewer import build_viewer, step_caption, stop_controls, stream_run, wire_run, wire_viewer


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
    true_width = float(ikc.estimate_width(kernel))
    truth = Truth(ikc.modcrop(photo.pixels, scale), kernel, true_width, noise,
                  range_warning(scale, true_width, bool(anisotropic), noise, quality, highest), highest)
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
    jpeg_range = models.model_for(scale).jpeg_range
    if jpeg_quality is not None and jpeg_range is None:
        reasons.append(f"JPEG compression at quality {jpeg_quality} (training images were stored losslessly)")
    elif jpeg_quality is not None and jpeg_quality < jpeg_range[0]:
        reasons.append(f"JPEG quality {jpeg_quality} is below {jpeg_range[0]}, the lowest the JPEG SFTMD saw")
    return ("**Outside the training range** (" + "; ".join(reasons) + "): IKC has never seen such a blur, "
            "so watch how it copes.") if reasons else ""


def sharp_photo_with_examples(prefix: str, examples: list[str]) -> gr.Image:
    """The sharp-photo input of a lab, with the built-in photos as examples under it."""
    image = photo_input("Sharp photo", f"{prefix}-input", 220)
    gr.Examples(examples, inputs=image, label="Built-in photos", elem_id=f"{prefix}-examples", api_visibility="private")
    return image


def classroom_preset(examples: list[str]) -> list[Any]:
    """The lab's settings for a class: a built-in photo blurred with a known width, IKC started far from it."""
    photo = next(path for path in examples if Path(path).stem == CLASSROOM["photo"])
    return [photo, CLASSROOM["width"], False, 0, False, 0, CLASSROOM["scale"], CLASSROOM["start"]]


def side_by_side(model: ikc.IKC, run: RunResult) -> list[tuple[np.ndarray, str]]:
    """The lab's comparison: bicubic, SFTMD told the true kernel, the Predictor only (step 0) and IKC's final step,
    PSNR-Y / SSIM-Y in each caption, then the same zoomed on the most textured patch."""
    truth = run.truth
    told = model.for_input(run.jpeg_quality).super_resolve(run.lr, kernel=truth.kernel, noise_sigma=truth.noise_sigma)
    images = [(unpack(run.bicubic), "bicubic"), (told, "SFTMD told the true kernel"),
              (run.image(0), "Predictor only (step 0)"), (run.image(run.iterations), f"IKC, step {run.iterations}")]
    box = zoom_box(truth.hr, ZOOM_SIDE)
    items = [(image, f"{name}: {psnr:.2f} dB / {ssim:.3f}")
             for image, name in images for psnr, ssim in [ikc.psnr_ssim_y(image, truth.hr, run.scale)]]
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
            told_jpeg = gr.Checkbox(True, interactive=False, elem_id="lab-told-jpeg",
                                    label="Tell IKC the LR image is a JPEG (its SFTMD trained on JPEG inputs); untick "
                                          "to see what unmodelled compression does")
            scale = gr.Radio(scales, value=max(scales), label="Scale")
            lr_view = gr.Image(label="Low-resolution input (what IKC sees)", format="png", interactive=False,
                               height=200, buttons=["download"])
            lr_note = gr.Markdown(elem_id="lab-lr-note")
            iterations = gr.Slider(0, MAX_ITERATIONS, value=DEFAULT_ITERATIONS, step=1, label="Correction steps")
            start = gr.Slider(0, WIDTH_LIMITS[1], value=0, step=0.05, elem_id="lab-start",
                              label="Start IKC from kernel width (0: the Predictor's guess)")
            preset = gr.Button(f"Classroom preset: x{CLASSROOM['scale']}, width {CLASSROOM['width']:g}, IKC starts "
                               f"from {CLASSROOM['start']:g}", size="sm", elem_id="lab-preset")
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
                scale_value: Any, steps: Any, start_value: Any, told_jpeg_value: bool, stop_signal: StopSignal,
                request: gr.Request) -> Iterator[dict]:
        with user_errors():
            lr, truth, notes, factor = lab_degradation(payload, width_value, anisotropic_value, sigma_x_value,
                                                       sigma_y_value, angle_value, noise_value, by_region_value,
                                                       noise_max_value, jpeg_value, scale_value)
            count = checked_whole("correction steps", steps, 0, MAX_ITERATIONS)
            start_width = checked_start(start_value)
            model = models.model_for(factor)
            quality = checked_jpeg_quality(jpeg_value) if told_jpeg_value else None
            run = RunResult(lr, factor, count, truth, start_width=start_width, jpeg_quality=quality)
            yield {lr_view: lr, viewer.true_kernel: truth_picture(truth)}
            # every step rendered: the scores plot compares them all with the sharp original
            yield {compared: None}
            yield from stream_run(viewer, state, progress, model, run, results_folder(request, "lab"),
                                  upload_stem(payload), notes + jpeg_note(model, run), fill_in=True, stop=stop_signal)
            if run.iterations in run.images and not stop_signal.pressed:
                yield {compared: side_by_side(model, run)}

    gr.on([image.change, width.release, anisotropic.change, sigma_x.release, sigma_y.release, angle.release,
           noise.release, by_region.change, noise_max.release, jpeg.release, scale.change], preview,
          [state, *settings], [lr_view, lr_note, viewer.caption, viewer.true_kernel], preprocess=False,
          trigger_mode="always_last", api_visibility="private", show_progress="hidden")
    preset.click(lambda: classroom_preset(examples), None, [image, width, anisotropic, noise, by_region, jpeg, scale,
                                                            start], api_visibility="private", show_progress="hidden")
    jpeg.change(lambda quality: gr.Checkbox(interactive=bool(quality)), jpeg, told_jpeg, api_visibility="private",
                show_progress="hidden")  # the choice matters only for a JPEG
    wire_run(run_button, stop_button, stop, progress, run_lab, [*settings, iterations, start, told_jpeg],
             [state, progress, lr_view, compared, *viewer.step_components(), viewer.comparison, viewer.download])

