"""The step viewer shared by Restore and the Degradation lab, and the Run/Stop wiring of a streamed run."""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

import ikc

from . import models
from .figures import estimate_picture, export_steps, plot_figure, truth_picture
from .inputs import notes_line
from .session import RunResult, StopSignal, correction_stream, results_folder, save_download, unpack
from .settings import DEFAULT_ITERATIONS


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
        run.render(models.model_for(run.scale), index)
        return self.show(run, index) if run.shown == index else gr.skip()

    def export_run(self, run: RunResult | None, request: gr.Request) -> list[str]:
        """The export button: the run's animation, curves and numbers as files to download."""
        if run is None or not run.steps:
            raise gr.Error("Run IKC first: there are no steps to export yet.", print_exception=False)
        folder = results_folder(request, self.prefix) / "export"
        return [str(path) for path in export_steps(models.model_for(run.scale), run, folder)]

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
        export = gr.Button("Export the steps (GIF, curves PNG, CSV, JSON)",
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


SCROLL_TO_RESULTS = """() => { if (window.innerWidth < 700)
    document.getElementById("ID")?.scrollIntoView({behavior: "smooth", block: "start"}); }"""  # phones: results


def wire_run(button: gr.Button, stop_button: gr.Button, stop: gr.State, progress: gr.Markdown, handler: Any,
             inputs: list[gr.components.Component], outputs: list[gr.components.Component]) -> None:
    """Run streams `handler` in the model's slot; Stop, enabled only meanwhile, ends it after the current step
    with the steps so far kept, instead of cancelling it (which shows an error)."""
    light = {"concurrency_limit": None, "api_visibility": "private", "show_progress": "hidden"}
    button.click(None, js=SCROLL_TO_RESULTS.replace("ID", f"{button.elem_id.split('-')[0]}-step"))
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
    return run_button, stop_button, gr.State(StopSignal())  # each session gets its own copy

