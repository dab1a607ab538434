"""The Gradio app end to end: `python app.py` as a subprocess, driven through its named API with gradio_client."""
from __future__ import annotations

import json
import urllib.request

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import ikc
from studio import figures, inputs, lab, mismatch, models, session, settings
from studio import viewer as viewing

from .conftest import connect, photo, running_app


def pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_api_lists_the_two_named_endpoints(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == \
        {"/degrade", "/super_resolve"}


def test_degrade_returns_the_lr_image_first(client, tmp_path):
    from gradio_client import handle_file
    sharp = ikc.save_png(photo("astronaut"), tmp_path / "sharp.png")
    lr_path, info = client.predict(handle_file(str(sharp)), 2.0, 5.0, 4, api_name="/degrade")
    lr = pixels(lr_path)
    assert lr.shape == (128, 128, 3)
    assert info["lr_size"] == [128, 128] and info["notes"] == [] and info["jpeg_quality"] is None
    expected = ikc.degrade_image(photo("astronaut"), ikc.gaussian_kernel(2.0), 4, 5.0)
    assert np.array_equal(lr, expected), "the PNG round trip must be lossless"
    lr_path, info = client.predict(handle_file(str(sharp)), 2.0, 5.0, 4, 70, api_name="/degrade")
    assert info["jpeg_quality"] == 70, "the optional fifth argument saves the LR image as JPEG"
    assert np.array_equal(pixels(lr_path), ikc.jpeg_compress(expected, 70))
    lr_path, info = client.predict(handle_file(str(sharp)), 2.0, 5.0, 4, None, 50.0, api_name="/degrade")
    assert info["noise_sigma_max"] == 50 and info["jpeg_quality"] is None, "the sixth: noise varying by region"
    assert np.array_equal(pixels(lr_path), ikc.degrade_image(photo("astronaut"), ikc.gaussian_kernel(2.0), 4, 5.0,
                                                             noise_sigma_max=50.0))


def test_super_resolve_streams_every_step_then_the_final_image(client, lr_file):
    from gradio_client import handle_file
    job = client.submit(handle_file(str(lr_file)), 4, 3, api_name="/super_resolve")
    sr_path, info = job.result(timeout=60)
    updates = job.outputs()
    assert [len(update[1]["steps"]) for update in updates] == [1, 2, 3, 4], "one update per step, in order"
    assert all(update[0] is None for update in updates[:-1])
    assert pixels(sr_path).shape == (256, 256, 3)
    assert [s["step"] for s in info["steps"]] == [0, 1, 2, 3]
    last = info["steps"][-1]
    assert np.array(last["kernel"]).shape == (21, 21) and len(last["code"]) == ikc.CODE_LENGTH
    assert last["kernel_width"] > 0 and info["scale"] == 4
    assert info["jpeg_sftmd"] is False, "a PNG goes to the lossless SFTMD"


@pytest.mark.parametrize("quality, size, jpeg_sftmd", [(60, 64, True), (90, 64, False), (60, 480, False)])
def test_a_jpeg_upload_goes_to_the_jpeg_sftmd_within_its_range(client, tmp_path, quality, size, jpeg_sftmd):
    from gradio_client import handle_file
    path = tmp_path / "photo.jpg"
    Image.fromarray(photo("coffee")[:size, :size]).save(path, quality=quality)
    _, info = client.predict(handle_file(str(path)), 4, 0, api_name="/super_resolve")
    assert f"JPEG, quality about {quality}" in info["notes"]
    assert info["jpeg_sftmd"] is jpeg_sftmd, "the tiny JPEG SFTMD saw qualities 40-80; 480 px is downscaled 2.5x"
    assert any("restored as a lossless image" in note for note in info["notes"]) == (size == 480)


@pytest.mark.parametrize("arguments, message", [
    (("text", 4, 7), "not an image file"),
    (("lr", 5, 7), "scale must be from 2 to 4"),
    (("lr", 3, 7), "no checkpoint for x3"),
    (("lr", 4, 16), "iterations must be from 0 to 15"),
    (("lr", 4, 2.5), "iterations must be a whole number"),
    (("lr", "four", 7), "scale must be a number"),
    ((None, 4, 7), "upload a photo"),
])
def test_bad_input_gives_a_clear_error_and_the_app_keeps_serving(client, lr_file, tmp_path, arguments, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    text = tmp_path / "notes.png"
    text.write_text("this is text, not an image")
    image = {"text": handle_file(str(text)), "lr": handle_file(str(lr_file)), None: None}[arguments[0]]
    with pytest.raises(AppError, match=message):
        client.predict(image, *arguments[1:], api_name="/super_resolve")
    _, info = client.predict(handle_file(str(lr_file)), 4, 0, api_name="/super_resolve")
    assert len(info["steps"]) == 1


def test_degrade_refuses_out_of_range_noise(client, lr_file):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="noise sigma must be from 0 to 25"):
        client.predict(handle_file(str(lr_file)), 2.0, 30.0, 4, api_name="/degrade")


def test_large_input_is_downscaled_with_a_notice(client, tmp_path):
    from gradio_client import handle_file
    big = ikc.save_png(photo("astronaut")[:400, :300], tmp_path / "big.png")
    sr_path, info = client.predict(handle_file(str(big)), 4, 0, api_name="/super_resolve")
    assert any("downscaled from 300x400" in note for note in info["notes"])
    height, width = pixels(sr_path).shape[:2]
    assert height * width <= 768 * 768 and info["lr_size"] == [width // 4, height // 4]


@pytest.mark.slow
def test_the_page_serves_and_explains_when_there_are_no_checkpoints(tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    empty = tmp_path / "no-checkpoints"
    empty.mkdir()
    with running_app(empty, tmp_path / "app") as server:
        page = urllib.request.urlopen(server.url + "config", timeout=10).read().decode()
        assert "No model checkpoints found" in page
        lr = ikc.save_png(photo("coffee")[:64, :64], tmp_path / "lr.png")
        client = connect(server.url, tmp_path / "downloads")
        with pytest.raises(AppError, match="no checkpoint for x4"):
            client.predict(handle_file(str(lr)), 4, 7, api_name="/super_resolve")


def test_validation_helpers():
    assert inputs.checked_whole("steps", 7.0, 0, 15) == 7
    for bad in (float("nan"), "x", None, 16):
        with pytest.raises(ValueError, match="steps"):
            inputs.checked_whole("steps", bad, 0, 15)
    assert mismatch.assumed_widths(2.0)[4] == 2.0 and len(mismatch.assumed_widths(2.0)) == 9
    assert min(mismatch.assumed_widths(0.4)) >= 0.2
    lr, hr = mismatch.crop_pair(np.zeros((100, 120, 3)), np.zeros((400, 480, 3)), 4, 96)
    assert lr.shape[:2] == (96, 96) and hr.shape[:2] == (384, 384)


def test_the_lab_can_save_its_lr_image_as_jpeg_and_says_where_no_network_was_trained_on_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # the upload folder: only files there are read
    sharp = ikc.save_png(photo("astronaut")[:256, :256], tmp_path / "sharp.png")
    settings = ({"path": str(sharp)}, 2.0, False, 1.0, 3.0, 0.0, 0.0)
    lossless, truth, _, _ = lab.lab_degradation(*settings, False, 40, 0, 4)
    compressed, jpeg_truth, _, _ = lab.lab_degradation(*settings, False, 40, 70, 4)
    assert np.array_equal(compressed, ikc.jpeg_compress(lossless, 70))
    assert truth.warning == "" and jpeg_truth.warning == "", "x4 ships an SFTMD trained on JPEG q30-95"
    assert "JPEG quality 20 is below 30" in lab.lab_degradation(*settings, False, 40, 20, 4)[1].warning
    monkeypatch.setattr(models.model_for(2), "jpeg_sftmd", None)  # a scale that ships no JPEG SFTMD
    assert "JPEG compression at quality 70" in lab.lab_degradation(*settings, False, 40, 70, 2)[1].warning
    assert inputs.checked_jpeg_quality(None) is None and inputs.checked_jpeg_quality(0) is None
    with pytest.raises(ValueError, match="JPEG quality must be from 1 to 100"):
        inputs.checked_jpeg_quality(101)
    patchy, patchy_truth, _, _ = lab.lab_degradation(*settings[:-1], 5.0, True, 60, 0, 4)
    assert np.array_equal(patchy, ikc.degrade_image(photo("astronaut")[:256, :256], ikc.gaussian_kernel(2.0), 4, 5.0,
                                                    noise_sigma_max=60))
    assert patchy_truth.noise_max == 60 and "varies by region, from 5 to 60" in patchy_truth.warning
    assert "above 25 none was seen" in patchy_truth.warning
    with pytest.raises(ValueError, match="highest block noise sigma must be from 5 to 75"):
        lab.lab_degradation(*settings[:-1], 5.0, True, 2, 0, 4)


def test_the_estimated_kernel_is_drawn_bright_in_the_centre_even_for_a_code_off_the_gaussians():
    model = ikc.load(4)
    code = model.code_for(ikc.gaussian_kernel(2.0))
    code[:10] += np.random.default_rng(0).normal(0, 2, (2, 10))[1].astype(np.float32)  # off the Gaussians
    step = model.describe(1, code, None)
    assert step.kernel[10, 10] < step.kernel.max()
    picture = figures.estimate_picture(step)[:21 * 8].astype(int).sum(-1)  # the heat map above the caption
    assert picture[10 * 8 + 4, 10 * 8 + 4] == picture.max()


def test_read_photo_downscales_to_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # the upload folder: only files there are read
    path = ikc.save_png(photo("rocket"), tmp_path / "rocket.png")
    image = inputs.read_photo({"path": str(path)}, 100 * 100, 8)
    height, width = image.pixels.shape[:2]
    assert height * width <= 100 * 100 and "downscaled from 640x427" in image.notes[-1]
    with pytest.raises(ValueError, match="upload a photo"):
        inputs.read_photo(None, 100, 8)


@pytest.fixture()
def counted_model(tiny_checkpoints, monkeypatch) -> tuple[ikc.IKC, list[np.ndarray]]:
    """The app's model_for gives the tiny x4 model, whose full-size renders are recorded (their codes)."""
    model, codes = ikc.load(4, tiny_checkpoints), []
    render = model.render

    def counted(lr: np.ndarray, code: np.ndarray) -> np.ndarray:
        codes.append(code.copy())
        return render(lr, code)

    monkeypatch.setattr(model, "render", counted)
    monkeypatch.setattr(models, "model_for", lambda scale: model)
    return model, codes


def viewer_parts(with_truth: bool) -> tuple:
    """A step viewer, its state and a progress line, laid out in a throwaway Blocks."""
    with gr.Blocks():
        return viewing.build_viewer("test", with_truth), gr.State(), gr.Markdown()


@pytest.mark.slow
def test_restore_renders_the_first_and_final_step_then_each_step_looked_at_once(counted_model, lr_file, tmp_path):
    model, codes = counted_model
    viewer, state, progress = viewer_parts(with_truth=False)
    run = session.RunResult(ikc.load_image(lr_file), 4, 3)
    updates = list(viewing.stream_run(viewer, state, progress, model, run, tmp_path, "lr", [], fill_in=False,
                                   stop=session.StopSignal()))
    assert len(updates) == 1 + 4 + 1, "no fill-in: the stream ends after the final step"
    assert "Done in" in updates[-1][progress] and viewer.sr not in updates[-1]
    assert len(run.steps) == 4 and sorted(run.images) == [0, 3] and len(codes) == 2
    assert run.shown == 3 and run.download.is_file()

    shown = viewer.show(run, 2)  # the slider moved to step 2: what is stored, at once; step 3's image stays, busy
    assert shown[viewer.sr].constructor_args == {"label": "Rendering step 2... (showing step 3 meanwhile)",
                                                 "elem_classes": ["busy"]}
    assert "being rendered" in shown[viewer.caption]
    rendered = viewer.render_shown(run)  # then the chained event, in the model's slot
    assert len(codes) == 3 and np.array_equal(codes[-1], run.steps[2].code)
    image = rendered[viewer.sr].constructor_args
    assert np.array_equal(image["value"], run.image(2)) and image["elem_classes"] == []
    assert image["label"].endswith("step 2") and "being rendered" not in rendered[viewer.caption]
    assert np.array_equal(run.image(2), type(model).render(model, run.lr, run.steps[2].code)), "step 2's own image"

    again = viewer.show(run, 2)  # a second look: stored, nothing to render
    assert np.array_equal(again[viewer.sr].constructor_args["value"], run.image(2))
    assert viewer.render_shown(run) == gr.skip() and len(codes) == 3

    viewer.show(run, 1)
    viewer.show(run, 0)  # left step 1 before its render came: it is not rendered
    assert viewer.render_shown(run) == gr.skip() and len(codes) == 3 and 1 not in run.images


def test_the_lab_renders_every_step_for_its_scores_plot(counted_model, tmp_path):
    model, codes = counted_model
    viewer, state, progress = viewer_parts(with_truth=True)
    hr = photo("astronaut")[128:384, 128:384]
    kernel = ikc.gaussian_kernel(2.0)
    run = session.RunResult(ikc.degrade_image(hr, kernel, 4), 4, 3, session.Truth(hr, kernel, 2.0, 0.0, ""))
    updates = list(viewing.stream_run(viewer, state, progress, model, run, tmp_path, "lab", [], fill_in=True,
                                   stop=session.StopSignal()))
    assert len(updates) == 1 + 4 + 2 + 1, "the two steps between are rendered after the final one"
    assert sorted(run.images) == sorted(run.scores) == [0, 1, 2, 3] and len(codes) == 4
    assert viewer.scores in updates[-1] and updates[-1][viewer.slider].value == 3
    assert viewer.render_shown(run) == gr.skip() and len(codes) == 4


def test_scrubbing_stops_play_and_a_tick_on_its_way_keeps_the_users_step(counted_model, tmp_path):
    model, _ = counted_model
    viewer, run = finished_lab_run(model, 3, tmp_path)
    started = viewer.play_from(run, 3)  # from the last step: Play starts over
    assert started[viewer.timer].active and run.shown == 0 and run.playing
    assert viewer.tick(run, 0)[viewer.slider].value == 1 and run.shown == 1
    scrubbed = viewer.scrub(run, 0)
    assert not scrubbed[viewer.timer].active and run.shown == 0 and not run.playing
    late = viewer.tick(run, 0)  # fired before the scrub's reply stopped the timer, with the new slider value
    assert viewer.slider not in late and not late[viewer.timer].active and run.shown == 0


def lab_run(iterations: int) -> session.RunResult:
    """A lab run of the astronaut's centre, blurred with width 2 and shrunk x4."""
    hr = photo("astronaut")[128:384, 128:384]
    kernel = ikc.gaussian_kernel(2.0)
    return session.RunResult(ikc.degrade_image(hr, kernel, 4), 4, iterations, session.Truth(hr, kernel, 2.0, 0.0, ""))


def finished_lab_run(model: ikc.IKC, iterations: int, folder, start_width: float | None = None) -> tuple:
    """A lab run streamed to its end (every step rendered) in a fresh viewer: (viewer, run)."""
    viewer, state, progress = viewer_parts(with_truth=True)
    run = lab_run(iterations)
    run.start_width = start_width
    list(viewing.stream_run(viewer, state, progress, model, run, folder, "lab", [], fill_in=True,
                            stop=session.StopSignal()))
    return viewer, run


def test_stop_ends_a_run_after_its_step_and_keeps_the_steps_so_far(counted_model, tmp_path):
    model, _ = counted_model
    viewer, state, progress = viewer_parts(with_truth=True)
    run, stop = lab_run(5), session.StopSignal()
    stream = viewing.stream_run(viewer, state, progress, model, run, tmp_path, "lab", [], fill_in=True, stop=stop)
    started = next(stream)
    assert "Estimating" in started[progress] and started[viewer.sr].constructor_args["elem_classes"] == ["busy"]
    assert next(stream)[progress].startswith("Step 0 of 5 done") and run.on_screen == 0
    assert next(stream)[progress].startswith("Step 1 of 5 done")
    assert viewing.arm_stop(stop).interactive and not stop.pressed
    button, line = viewing.press_stop(stop)
    assert stop.pressed and not button.interactive and "Stopping" in line
    rest = list(stream)
    assert rest[-1] == {progress: rest[-1][progress]} and rest[-1][progress].startswith("Stopped after step 1 of 5")
    assert len(run.steps) == 2 and run.download is None and 0 in run.images, "steps 0 and 1 kept, no final result"
    assert "Step 1 of 5" in viewer.show(run, 1)[viewer.caption]

    viewing.press_stop(stop)  # pressed while the next run waits in the queue: it does not start
    queued = list(viewing.stream_run(viewer, state, progress, model, lab_run(5), tmp_path, "lab", [],
                                 fill_in=True, stop=stop))
    assert queued == [{progress: "Stopped before it started."}]


def test_a_lab_run_whose_settings_changed_is_marked_and_keeps_the_new_true_kernel(counted_model, tmp_path):
    model, _ = counted_model
    viewer, run = finished_lab_run(model, 2, tmp_path)
    assert viewer.true_kernel in viewer.show(run, 1) and "changed" not in viewing.step_caption(run, 1)
    run.stale = True  # a slider moved after the run
    shown = viewer.show(run, 1)
    assert viewer.true_kernel not in shown, "the new settings' kernel stays on screen"
    assert shown[viewer.caption].startswith("**The settings have changed since this run** (true width 2.00)")
    assert "Step 1 of 2" in shown[viewer.caption]


def test_the_model_summary_reads_the_measured_numbers_beside_the_papers(tmp_path):
    (tmp_path / "published.json").write_text((settings.RESULTS / "published.json").read_text())
    for name, psnr in (("set5", 30.1234), ("set14", 27.5)):
        (tmp_path / f"{name}_x4.json").write_text(json.dumps({"methods": {"ikc": {"psnr_y": psnr, "ssim_y": 0.85}}}))
    text = models.model_summary(tmp_path, [2, 4])
    assert "| x4 | 30.12 / 0.850 | 31.67 / 0.883 | 27.50 / 0.850 | 28.31 / 0.764 |" in text
    assert "| x2 |" not in text, "no measured numbers for x2 here: no row"
    assert "Spatial Feature Transform for Multiple Degradations" in text


@pytest.mark.slow
def test_export_renders_the_missing_steps_and_writes_animation_curves_and_numbers(counted_model, tmp_path):
    model, codes = counted_model
    viewer, state, progress = viewer_parts(with_truth=True)
    run = lab_run(3)
    for step in model.steps(run.lr, 3, render="none"):
        run.record(step)
    run.render(model, 3)
    gif, figure, table, numbers = figures.export_steps(model, run, tmp_path / "export")
    assert sorted(run.images) == [0, 1, 2, 3] and len(codes) == 4, "steps 0-2 rendered for the export, 3 reused"
    with Image.open(gif) as animation:
        assert animation.n_frames == 4 and animation.info["loop"] == 0
    with Image.open(figure) as curves:
        assert curves.width > curves.height  # the width and quality plots side by side
    lines = table.read_text().splitlines()
    assert lines[0] == "step,kernel_width,noise_sigma,psnr_y,ssim_y" and len(lines) == 5
    record = json.loads(numbers.read_text())
    assert record["truth"]["kernel_width"] == 2.0 and [s["step"] for s in record["steps"]] == [0, 1, 2, 3]
    assert record["steps"][2]["psnr_y"] == pytest.approx(run.scores[2][0])


def test_a_lab_run_can_start_from_a_chosen_width(counted_model, tmp_path):
    model, _ = counted_model
    viewer, run = finished_lab_run(model, 2, tmp_path, start_width=inputs.checked_start(0.5))
    assert run.steps[0].kernel_width == pytest.approx(0.5, abs=0.05)
    assert "(the start you chose)" in viewing.step_caption(run, 0)
    assert inputs.checked_start(0) is None and inputs.checked_start("") is None
    with pytest.raises(ValueError, match="starting width must be 0"):
        inputs.checked_start(0.1)


def test_a_built_in_example_is_recognised_by_its_pixels_and_its_true_width_drawn(tmp_path):
    blurred, sharp, widths = models.example_files()
    pixels = ikc.load_image(blurred[0])
    assert widths[inputs.pixel_digest(pixels)] == settings.EXAMPLE_WIDTH
    assert inputs.pixel_digest(ikc.load_image(sharp[0])) not in widths
    run = session.RunResult(pixels[:32, :32], 4, 1, known_width=widths[inputs.pixel_digest(pixels)])
    figure = figures.plot_figure(run, 0, ("widths",))
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["estimated width", "true width"]
    assert figure.axes[0].get_lines()[1].get_ydata()[0] == settings.EXAMPLE_WIDTH


def test_the_mismatch_curve_draws_ikcs_path_from_its_start():
    rows = [(1.4, 25.0), (2.0, 27.0), (2.6, 26.0)]
    figure = figures.mismatch_figure(rows, 2.0, 24.0, [(1.0, 23.0), (1.8, 26.5), (1.95, 26.9)])
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert "IKC's path, steps 0-2" in labels and "IKC result, width 1.95" in labels
    assert "IKC's path, steps 0-2" not in [line.get_label() for line in
                                           figures.mismatch_figure(rows, 2.0, 24.0, []).axes[0].get_lines()]


@pytest.mark.slow
def test_a_region_of_a_large_photo_is_enlarged_at_native_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # the upload folder: only files there are read
    large = np.asarray(Image.fromarray(photo("astronaut")).resize((2000, 1500)))
    path = {"path": str(ikc.save_png(large, tmp_path / "large.png"))}
    whole = inputs.restore_input(path, 4, settings.WHOLE, None)
    assert whole.pixels.size // 3 <= settings.MAX_RESULT_PIXELS // 16 and "downscaled from 2000x1500" in whole.notes[-1]
    centre = inputs.picked_centre(1500, 2000, (160, 360))  # a click on the picker's 640x480 picture
    assert centre == pytest.approx((0.25, 0.75))
    region = inputs.restore_input(path, 4, settings.REGION, centre)
    assert region.pixels.shape == (192, 192, 3) and "192x192 px region at (404, 1029)" in region.notes[-1]
    assert np.array_equal(region.pixels, large[1029:1221, 404:596]), "native pixels, not resampled"
    assert inputs.region_box(100, 60, 192, (0.9, 0.1)) == (0, 0, 100, 60), "a small photo is its own region"
    view = inputs.region_view(large, inputs.region_box(1500, 2000, 192, centre))
    assert view.shape == (480, 640, 3) and tuple(view[round(1029 * 0.32) + 2, 160]) == (220, 30, 30)


def test_the_lab_side_by_side_scores_four_results_and_zooms_on_the_most_textured_patch(counted_model, tmp_path):
    model, _ = counted_model
    viewer, run = finished_lab_run(model, 2, tmp_path)
    items = lab.side_by_side(model, run)
    assert [caption.split(":")[0] for _, caption in items[:4]] == [
        "bicubic", "SFTMD told the true kernel", "Predictor only (step 0)", "IKC, step 2"]
    bicubic_psnr = float(items[0][1].split(": ")[1].split(" dB")[0])
    assert bicubic_psnr == pytest.approx(run.bicubic_psnr, abs=0.005)
    assert all(image.shape == (64 * 3, 64 * 3, 3) for image, _ in items[4:])
    flat = np.zeros((128, 128, 3), np.uint8)
    flat[70:100, 20:50] = np.indices((30, 30)).sum(0)[..., None] % 2 * 255  # a checkerboard: the only texture
    top, left, size = figures.zoom_box(flat, 32)
    assert top <= 70 and top + size >= 100 - 4 and left <= 20 and left + size >= 50 - 4


def test_a_run_told_its_input_is_a_jpeg_renders_every_step_with_the_jpeg_sftmd(tiny_checkpoints):
    model = ikc.load(4, tiny_checkpoints)
    lr = ikc.degrade_image(photo("coffee")[:128, :128], ikc.gaussian_kernel(2.0), 4, jpeg_quality=60)
    run = session.RunResult(lr, 4, 2, jpeg_quality=60)
    list(session.correction_stream(model, run, fill_in=True))
    jpeg = model.for_input(60)
    assert all(np.array_equal(run.image(step.index), jpeg.render(lr, step.code)) for step in run.steps)
    assert not np.array_equal(run.image(2), model.render(lr, run.steps[2].code))
    assert session.jpeg_note(model, run) == ["restored with the SFTMD trained on JPEG inputs"]
    assert session.jpeg_note(model, session.RunResult(lr, 4, 0)) == []  # not told: as a lossless image
    told = ikc.IKC(model.sftmd, model.pca, metadata={"jpeg": {"jpeg_range": [30, 95]}},
                   jpeg_sftmd=ikc.SFTMD(ikc.SFTMDConfig(nf=8, nb=1, quality_input=True)))
    assert session.jpeg_note(told, run) == ["restored with the SFTMD trained on JPEG inputs, told quality 60"]


def test_a_jpeg_run_says_when_the_jpeg_estimators_estimated_its_kernel(jpeg_estimators_checkpoints):
    model = ikc.load(4, jpeg_estimators_checkpoints)
    lr = ikc.degrade_image(photo("coffee")[:128, :128], ikc.gaussian_kernel(2.0), 4, jpeg_quality=60)
    assert session.jpeg_note(model, session.RunResult(lr, 4, 2, jpeg_quality=60)) == [
        "restored with the SFTMD trained on JPEG inputs",
        "kernel estimated by the Predictor and Corrector trained on JPEG inputs"]
