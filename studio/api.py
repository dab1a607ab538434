"""The named API endpoints /degrade and /super_resolve."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import GradioRootModel, ImageData

import ikc
from ikc.pipeline import MIN_LR_SIZE

from . import models
from .inputs import (
    checked_jpeg_quality,
    checked_noise_max,
    checked_number,
    checked_scale,
    checked_whole,
    read_photo,
    user_errors,
)
from .session import step_record
from .settings import DEFAULT_ITERATIONS, MAX_ITERATIONS, MAX_NOISE, MAX_RESULT_PIXELS, WIDTH_LIMITS


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
            model = models.model_for(factor).for_input(photo.jpeg_quality)
            records: list[dict] = []
            for step in model.steps(photo.pixels, count, render="last"):
                records.append(step_record(step))
                yield step.sr, {"scale": factor, "lr_size": [photo.pixels.shape[1], photo.pixels.shape[0]],
                                "notes": photo.notes, "jpeg_sftmd": model.uses_jpeg_sftmd,
                                "jpeg_estimators": model.uses_jpeg_estimators, "steps": records}

    degrade_button.click(degrade, [image, width, noise, scale, jpeg, noise_max], [lr_out, info], api_name="degrade",
                         preprocess=False)
    sr_button.click(super_resolve, [image, scale, iterations], [sr_out, info], api_name="super_resolve",
                    preprocess=False, concurrency_id="model", concurrency_limit=1)

