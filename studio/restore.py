"""The Restore tab: blind SR of a low-resolution photo, step by step."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

import ikc
from ikc.pipeline import MIN_LR_SIZE

from . import models
from .inputs import (
    checked_scale,
    checked_whole,
    notes_line,
    photo_input,
    picked_centre,
    pixel_digest,
    region_box,
    region_of,
    region_view,
    restore_input,
    upload_path,
    upload_stem,
    user_errors,
)
from .session import RunResult, StopSignal, delete_run_files, jpeg_note, results_folder
from .settings import (
    DEFAULT_ITERATIONS,
    EXAMPLE_SCALE,
    EXAMPLE_WIDTH,
    MAX_ITERATIONS,
    MAX_RESULT_SIDE,
    REGION,
    SESSION_TTL,
    WHOLE,
)
from .viewer import build_viewer, stop_controls, stream_run, wire_run, wire_viewer


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
            if mode_value == REGION:  # the photo is decoded once, for the region and for the picker
                whole = ikc.read_image(upload_path(payload), min_size=MIN_LR_SIZE)
                photo = region_of(whole, factor, centre_value)
            else:
                whole, photo = None, restore_input(payload, factor, mode_value, centre_value)
        except (ikc.ImageError, ValueError) as error:
            return {notice: f"**This input cannot be used:** {error}", picker: gr.Image(None, visible=False)}
        height, width = photo.pixels.shape[:2]
        text = f"{width}x{height} px, result {width * factor}x{height * factor} px. {notes_line(photo.notes)}"
        if whole is None:
            return {notice: text, picker: gr.Image(None, visible=False)}
        box = region_box(*whole.pixels.shape[:2], MAX_RESULT_SIDE // factor, centre_value)
        return {notice: text + " Click the picture to move the region.", picker: gr.Image(
            region_view(whole.pixels, box), visible=True)}

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
            model = models.model_for(factor)
            known = known_widths.get(pixel_digest(photo.pixels)) if factor == EXAMPLE_SCALE else None
            run = RunResult(photo.pixels, factor, count, known_width=known, jpeg_quality=photo.jpeg_quality)
            yield from stream_run(viewer, state, progress, model, run, results_folder(request, "restore"),
                                  upload_stem(payload), photo.notes + jpeg_note(model, run), fill_in=False,
                                  stop=stop_signal)

    light = {"preprocess": False, "api_visibility": "private", "show_progress": "hidden"}
    image.change(lambda: None, None, centre, **light)  # a new photo: its region starts in the middle
    gr.on([image.change, scale.change, mode.change, centre.change], describe, [image, scale, mode, centre],
          [notice, picker], trigger_mode="always_last", **light)
    picker.select(move_region, image, centre, **light)
    wire_run(run_button, stop_button, stop, progress, restore, [image, scale, mode, centre, iterations],
             [state, progress, *viewer.step_components(), viewer.comparison, viewer.download])

