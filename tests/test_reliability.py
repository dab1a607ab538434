"""Reliability: hostile files, hostile API calls, load, memory, cancellation and damaged checkpoints.

Every file of a generated corpus goes through ikc.read_image, the CLI and the app's /super_resolve endpoint;
the app runs as a subprocess on 127.0.0.1 with tiny checkpoints. Figures are printed (see with `pytest -s`).
"""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx
import numpy as np
import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import Status
from PIL import Image

import ikc
from ikc.checkpoint import MANIFEST, write_manifest
from ikc.cli import main
from ikc.imageio import ORIENTATION
from ikc.pipeline import MIN_LR_SIZE
from studio import cache
from studio.session import RunResult

from .conftest import REPO, AppServer, connect, photo, running_app

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
CLIENTS = 8  # concurrent gradio_client sessions in the load test
RESTORES = 50  # restores in a row in the memory test
MEMORY_MARGIN_MB = 40  # allowed RSS growth over RESTORES restores after a warm-up (measured: +1 to +21 MB)
FUZZ_MUTATIONS = 80  # damaged variants per format


def blocks() -> np.ndarray:
    """A 48x80 picture of four flat quadrants (red, green / blue, yellow): every corner has its own colour."""
    image = np.zeros((48, 80, 3), np.uint8)
    image[:24, :40], image[:24, 40:], image[24:, :40], image[24:, 40:] = RED, GREEN, BLUE, YELLOW
    return image


def grey() -> np.ndarray:
    """blocks() in greyscale, as RGB."""
    return np.asarray(Image.fromarray(blocks()).convert("L").convert("RGB"))


def noise(height: int, width: int) -> np.ndarray:
    """Random pixels: they compress badly, so a truncated file loses real image data."""
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)


def centres(pixels: np.ndarray) -> np.ndarray:
    """The colours at the centres of the four quadrants, (2, 2, 3) as int."""
    height, width = pixels.shape[:2]
    return pixels[[height // 4, 3 * height // 4]][:, [width // 4, 3 * width // 4]].astype(int)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    """The file `image` would be, saved as `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def rgba() -> Image.Image:
    """blocks() with its left half fully transparent."""
    alpha = np.full((48, 80, 1), 255, np.uint8)
    alpha[:, :40] = 0
    return Image.fromarray(np.concatenate([blocks(), alpha], axis=2))


def exif_rotated() -> bytes:
    """blocks() as a JPEG whose EXIF orientation 6 says: turn 90 degrees clockwise to show."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return encoded(Image.fromarray(blocks()), "JPEG", quality=95, exif=exif)


def animated() -> bytes:
    """A GIF of two frames: blocks(), then its negative."""
    frames = [Image.fromarray(blocks()), Image.fromarray(255 - blocks())]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def whitened() -> np.ndarray:
    """blocks() with its left half white."""
    image = blocks()
    image[:, :40] = 255
    return image


@dataclass(frozen=True)
class Case:
    """One file of the corpus: how it is made, and the error or the result and note it must give."""

    name: str
    data: Callable[[], bytes]
    error: str | None = None  # the error must contain this
    expected: Callable[[], np.ndarray] | None = None  # the decoded pixels (compared at the quadrant centres)
    note: str | None = None  # a note must contain this (no note at all when None)
    tolerance: int = 0  # for lossy formats


CASES = [
    Case("empty.png", lambda: b"", error="the file is empty"),
    Case("text.png", lambda: b"this is text, not an image", error="not an image file"),
    Case("truncated.png", lambda: encoded(Image.fromarray(noise(48, 64)), "PNG")[:3000], error="truncated"),
    Case("truncated.jpg", lambda: encoded(Image.fromarray(noise(48, 64)), "JPEG")[:2000], error="truncated"),
    Case("one_pixel.png", lambda: encoded(Image.fromarray(blocks()[:1, :1]), "PNG"), error="1x1 px is too small"),
    Case("three_pixels.png", lambda: encoded(Image.fromarray(blocks()[:3, :3]), "PNG"), error="3x3 px is too small"),
    Case("bomb.png", lambda: encoded(Image.new("1", (20000, 20000)), "PNG"), error="decompression bomb"),
    Case("huge.png", lambda: encoded(Image.new("P", (8000, 8000)), "PNG"), error="8000x8000 px is too large"),
    Case("grey16.png", lambda: encoded(Image.fromarray(grey()[..., 0].astype(np.uint16) * 257), "PNG"),
         expected=grey, note="16-bit"),
    Case("palette.png", lambda: encoded(Image.fromarray(blocks()).quantize(4), "PNG"), expected=blocks),
    Case("grey.png", lambda: encoded(Image.fromarray(grey()[..., 0]), "PNG"), expected=grey),
    Case("rgba.png", lambda: encoded(rgba(), "PNG"), expected=whitened,
         note="transparent areas were filled with white"),
    Case("cmyk.jpg", lambda: encoded(Image.fromarray(blocks()).convert("CMYK"), "JPEG", quality=95),
         expected=blocks, note="JPEG, quality about 95", tolerance=8),
    Case("exif_rotated.jpg", exif_rotated, expected=lambda: np.rot90(blocks(), -1), note="upright", tolerance=8),
    Case("animated.gif", animated, expected=blocks, note="only the first of 2 frames"),
    Case("photo.tif", lambda: encoded(Image.fromarray(blocks()), "TIFF"), expected=blocks),
]
GOOD = [case for case in CASES if case.error is None]
BAD = [case for case in CASES if case.error is not None]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The corpus as files in one folder."""
    folder = tmp_path_factory.mktemp("corpus")
    for case in CASES:
        (folder / case.name).write_bytes(case.data())
    return folder


def assert_clear(message: str, case: Case) -> None:
    """One line that names the file, says what is wrong and what is accepted."""
    assert "\n" not in message and case.name in message and case.error in message
    assert any(word in message for word in ("expected", "accepted", "at least")), message


def assert_result(pixels: np.ndarray, notes: list[str], case: Case) -> None:
    expected = case.expected()
    assert pixels.shape == expected.shape and pixels.dtype == np.uint8
    assert np.abs(centres(pixels) - centres(expected)).max() <= case.tolerance
    assert [n for n in notes if case.note in n] if case.note else notes == [], notes


# ---------------------------------------------------------------- bad files: the loader, the CLI, the app


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_read_image_gives_a_result_or_one_clear_line(corpus, case):
    if case.error:
        with pytest.raises(ikc.ImageError) as error:
            ikc.read_image(corpus / case.name, min_size=MIN_LR_SIZE)
        assert_clear(str(error.value), case)
    else:
        image = ikc.read_image(corpus / case.name, min_size=MIN_LR_SIZE)
        assert_result(image.pixels, image.notes, case)


def test_exif_orientation_puts_each_corner_where_the_camera_saw_it(corpus):
    pixels = ikc.read_image(corpus / "exif_rotated.jpg").pixels
    assert pixels.shape[:2] == (80, 48)  # stored 80 wide and 48 high, shown 48 wide and 80 high
    corners = {"top left": pixels[2, 2], "top right": pixels[2, -3], "bottom left": pixels[-3, 2],
               "bottom right": pixels[-3, -3]}
    expected = {"top left": BLUE, "top right": RED, "bottom left": YELLOW, "bottom right": GREEN}
    for corner, colour in expected.items():
        assert np.abs(corners[corner].astype(int) - colour).max() <= 8, corner


def test_a_dark_16_bit_image_stays_dark(tmp_path):
    path = tmp_path / "dark16.png"
    Image.fromarray(np.full((16, 16), 200, np.uint16)).save(path)  # 200 of 65535: almost black
    assert ikc.read_image(path).pixels.max() == 1


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damaged metadata it skips
def test_damaged_files_of_every_format_decode_or_fail_with_image_error():
    rng = np.random.default_rng(1)
    picture = Image.fromarray(noise(24, 32))
    outcomes = {"decoded": 0, "refused": 0}
    for fmt in ("PNG", "JPEG", "TIFF", "GIF", "WEBP", "BMP"):
        original = encoded(picture, fmt)
        for _ in range(FUZZ_MUTATIONS):
            data = bytearray(original)
            for position in rng.integers(0, len(data), rng.integers(1, 6)):
                data[position] = rng.integers(0, 256)
            data = data[:rng.integers(1, len(data))] if rng.random() < 0.3 else data
            try:
                ikc.read_image(bytes(data))
                outcomes["decoded"] += 1
            except ikc.ImageError as error:
                assert "\n" not in str(error)
                outcomes["refused"] += 1
    print(f"fuzzed files: {outcomes}")


def test_cli_processes_the_good_files_and_reports_each_bad_one(corpus, tmp_path, tiny_checkpoints, capsys):
    out = tmp_path / "out"
    code = main([str(corpus), "-o", str(out), "--iterations", "1", "--checkpoints", str(tiny_checkpoints)])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{Path(c.name).stem}.png" for c in GOOD)
    for case in GOOD:
        with Image.open(out / f"{Path(case.name).stem}.png") as result:
            assert result.size == (case.expected().shape[1] * 4, case.expected().shape[0] * 4)
    errors = captured.err.splitlines()
    assert "Traceback" not in captured.err and errors[-1] == f"{len(BAD)} of {len(CASES)} file(s) failed"
    for case in BAD:
        assert_clear(next(line for line in errors if case.name in line), case)
    for case in GOOD:
        if case.note:
            assert f"{case.name}: note: " in captured.out and case.note in captured.out


def test_cli_on_a_folder_of_good_files_succeeds(corpus, tmp_path, tiny_checkpoints):
    folder = tmp_path / "good"
    folder.mkdir()
    for case in GOOD[:2]:
        shutil.copy(corpus / case.name, folder)
    assert main([str(folder), "-o", str(tmp_path / "out"), "--iterations", "0",
                 "--checkpoints", str(tiny_checkpoints)]) == 0


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_app_gives_a_result_or_one_clear_error(client, corpus, case):
    if case.error:
        with pytest.raises(AppError) as error:
            client.predict(handle_file(str(corpus / case.name)), 4, 1, api_name="/super_resolve")
        assert_clear(str(error.value), case)
        return
    sr_path, info = client.predict(handle_file(str(corpus / case.name)), 4, 1, api_name="/super_resolve")
    height, width = case.expected().shape[:2]
    assert info["lr_size"] == [width, height] and len(info["steps"]) == 2
    assert [n for n in info["notes"] if case.note in n] if case.note else info["notes"] == []
    with Image.open(sr_path) as result:
        assert result.size == (width * 4, height * 4)


@pytest.mark.parametrize("name", ["exif_rotated.jpg", "rgba.png", "grey16.png", "animated.gif"])
def test_app_keeps_the_pixels_upright_alpha_white_and_the_first_frame(client, corpus, name):
    case = next(c for c in CASES if c.name == name)
    lr_path, info = client.predict(handle_file(str(corpus / name)), 0.2, 0.0, 2, api_name="/degrade")
    with Image.open(lr_path) as lr:
        assert np.abs(centres(np.asarray(lr.convert("RGB"))) - centres(case.expected())).max() <= 8
    assert any(case.note in note for note in info["notes"])


# ---------------------------------------------------------------- hostile or careless API calls


@pytest.mark.parametrize("endpoint, arguments, message", [
    ("/super_resolve", ("lr", 4, -1), "iterations must be from 0 to 15, got -1"),
    ("/super_resolve", ("lr", 4, 10 ** 12), "iterations must be from 0 to 15"),
    ("/super_resolve", ("lr", 4, 2.5), "iterations must be a whole number"),
    ("/super_resolve", ("lr", 4, "many"), "iterations must be a number, got 'many'"),
    ("/super_resolve", ("lr", 4, None), "iterations must be a number, got None"),
    ("/super_resolve", ("lr", 4, [3]), "iterations must be a number"),
    ("/super_resolve", ("lr", 3, 2), r"no checkpoint for x3 .*available: x4"),
    ("/super_resolve", ("lr", 8, 2), "scale must be from 2 to 4, got 8"),
    ("/super_resolve", ("lr", -4, 2), "scale must be from 2 to 4"),
    ("/super_resolve", ("lr", 2.5, 2), "scale must be a whole number"),
    ("/super_resolve", ("lr", {"scale": 4}, 2), "scale must be a number"),
    ("/super_resolve", (None, 4, 2), "no image: upload a photo"),
    ("/super_resolve", ("hello", 4, 2), "image must be an uploaded file"),
    ("/super_resolve", (42, 4, 2), "image must be an uploaded file"),
    ("/super_resolve", ("outside", 4, 2), "only files uploaded to this app are read"),
    ("/degrade", ("lr", -1.0, 0.0, 4), "kernel width must be from 0.2 to 6, got -1"),
    ("/degrade", ("lr", 1e308, 0.0, 4), "kernel width must be from 0.2 to 6"),
    ("/degrade", ("lr", "wide", 0.0, 4), "kernel width must be a number"),
    ("/degrade", ("lr", 2.0, -5.0, 4), "noise sigma must be from 0 to 25, got -5"),
    ("/degrade", ("lr", 2.0, 0.0, 7), "scale must be from 2 to 4"),
    ("/degrade", ("lr", 2.0, 0.0, 4, 150), "JPEG quality must be from 1 to 100, got 150"),
    ("/degrade", ("lr", 2.0, 0.0, 4, "best"), "JPEG quality must be a number"),
    ("/degrade", ("lr", 2.0, 10.0, 4, None, 5.0), "highest block noise sigma must be from 10 to 75, got 5"),
    ("/degrade", ("lr", 2.0, 0.0, 4, None, 100), "highest block noise sigma must be from 0 to 75"),
])
def test_hostile_calls_get_a_clear_error(client, lr_file, endpoint, arguments, message):
    images = {"lr": handle_file(str(lr_file)), "outside": {"path": str(lr_file)}}  # the latter: no upload
    image = images.get(arguments[0], arguments[0])
    with pytest.raises(AppError, match=message):
        client.predict(image, *arguments[1:], api_name=endpoint)


def raw_error(server: AppServer, endpoint: str, body: str) -> str:
    """POST a hand-written JSON body to /gradio_api/call/<endpoint>; the error message the event stream ends with."""
    base = f"{server.url}gradio_api/call/{endpoint}"
    request = urllib.request.Request(base, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{base}/{event_id}", timeout=60) as response:
        lines = response.read().decode().splitlines()
    assert "event: error" in lines, lines[-3:]
    return json.loads(lines[lines.index("event: error") + 1].removeprefix("data: "))["error"] or ""


def test_raw_http_calls_that_gradio_client_cannot_send_get_a_clear_error(app_server, lr_file):
    uploads = app_server.log.parent / "gradio"
    upload = '{"path": "%s", "meta": {"_type": "gradio.FileData"}}'
    assert "got nan" in raw_error(app_server, "degrade", '{"data": [null, NaN, 0, 4, null, null]}')
    assert "got nan" in raw_error(app_server, "super_resolve", '{"data": [null, 4, NaN]}')
    assert "got inf" in raw_error(app_server, "degrade", '{"data": [null, 2, Infinity, 4, null, null]}')
    assert "not uploaded by a user" in raw_error(app_server, "super_resolve",
                                                 '{"data": [%s, 4, 1]}' % (upload % lr_file))
    assert "only files uploaded" in raw_error(app_server, "super_resolve",
                                              '{"data": [{"path": "%s/../app.log"}, 4, 1]}' % uploads)
    assert "input values (needed: 3, got: 2)" in raw_error(app_server, "super_resolve", '{"data": [null, 4]}')


def test_the_app_still_serves_after_all_that(client, lr_file):
    _, info = client.predict(handle_file(str(lr_file)), 4, 2, api_name="/super_resolve")
    assert len(info["steps"]) == 3


def test_the_page_offers_only_the_scales_that_have_checkpoints(app_server):
    config = json.loads(urllib.request.urlopen(app_server.url + "config", timeout=10).read())
    radio = next(c["props"] for c in config["components"] if c["props"].get("label") == "Scale (enlargement factor)")
    assert [choice[1] for choice in radio["choices"]] == [4]
    assert "Models available: x4." in json.dumps(config)


# ---------------------------------------------------------------- load, memory, cancellation


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def burst(url: str, image: Path, iterations: int, downloads: Path) -> list[str]:
    """CLIENTS sessions submit one restore each at the same moment: 'ok' or the error each got."""
    clients = [connect(url, downloads) for _ in range(CLIENTS)]
    start = threading.Barrier(CLIENTS)
    outcomes: list[str] = []

    def restore(client) -> None:
        start.wait()
        try:
            sr_path, info = client.predict(handle_file(str(image)), 4, iterations, api_name="/super_resolve")
            assert Path(sr_path).is_file() and len(info["steps"]) == iterations + 1
            outcomes.append("ok")
        except Exception as error:  # every failure is counted and shown, none may be lost
            outcomes.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=restore, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_eight_clients_at_once_all_complete(app_server, lr_file, tmp_path):
    before = rss_mb(app_server.pid)
    started = time.monotonic()
    outcomes = burst(app_server.url, lr_file, 2, tmp_path)
    seconds = time.monotonic() - started
    after = rss_mb(app_server.pid)
    print(f"{CLIENTS} concurrent restores: {outcomes.count('ok')} completed in {seconds:.1f} s; "
          f"RSS {before:.0f} -> {after:.0f} MB")
    assert outcomes == ["ok"] * CLIENTS
    assert after - before < 100


def test_a_cached_image_is_never_rewritten_while_another_session_may_be_reading_it(tmp_path):
    picture = Image.fromarray(np.full((16, 16, 3), 90, np.uint8))
    first = cache.save_pil_to_cache(picture, str(tmp_path), format="png")
    Path(first).write_bytes(b"being read")  # stands for a file another session's download holds open
    second = cache.save_pil_to_cache(picture, str(tmp_path), format="png")
    assert second == first and Path(first).read_bytes() == b"being read"
    other = cache.save_pil_to_cache(Image.fromarray(np.zeros((16, 16, 3), np.uint8)), str(tmp_path), format="png")
    assert other != first and np.asarray(Image.open(other)).max() == 0
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no staging file left behind


def test_fifty_restores_in_a_row_keep_memory_flat(app_server, client, lr_file):
    for _ in range(5):  # warm up: first-use allocations are not a leak
        client.predict(handle_file(str(lr_file)), 4, 2, api_name="/super_resolve")
    before = rss_mb(app_server.pid)
    started = time.monotonic()
    for _ in range(RESTORES):
        client.predict(handle_file(str(lr_file)), 4, 2, api_name="/super_resolve")
    after = rss_mb(app_server.pid)
    print(f"{RESTORES} restores in a row in {time.monotonic() - started:.1f} s: RSS {before:.0f} -> {after:.0f} MB")
    assert after - before < MEMORY_MARGIN_MB


def test_cancelling_mid_run_stops_it_and_the_next_run_is_fine(client, tmp_path):
    lr = ikc.save_png(ikc.degrade_image(photo("astronaut")[:480, :480], ikc.gaussian_kernel(2.0), 4),
                      tmp_path / "lr120.png")
    job = client.submit(handle_file(str(lr)), 4, 15, api_name="/super_resolve")
    deadline = time.monotonic() + 60
    while not job.outputs() and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.status().code == Status.CANCELLED
    assert len(job.outputs()) < 16, "the run went on after it was cancelled"
    _, info = client.predict(handle_file(str(lr)), 4, 2, api_name="/super_resolve")
    assert len(info["steps"]) == 3


SLOW_STEPS = """
import os, time
import ikc.pipeline
steps = ikc.pipeline.IKC.steps
def slow_steps(self, *args, **kwargs):  # each step logged to $IKC_STEP_LOG and 0.3 s longer
    for step in steps(self, *args, **kwargs):
        with open(os.environ["IKC_STEP_LOG"], "a") as log:
            log.write(f"{step.index}\\n")
        time.sleep(0.3)
        yield step
ikc.pipeline.IKC.steps = slow_steps
"""


def test_session_results_are_kept_losslessly_in_under_half_the_memory():
    lr = ikc.degrade_image(photo("astronaut")[:384, :384], ikc.gaussian_kernel(2.0), 4)
    run = RunResult(lr, 4, 1)
    sr = ikc.upscale_bicubic(lr, 4)
    run.record(ikc.Step(0, np.zeros(ikc.CODE_LENGTH, np.float32), np.zeros((21, 21)), 2.0, 0.0, sr))
    assert run.steps[0].sr is None and np.array_equal(run.image(0), sr) and run.image(1) is None
    assert len(run.images[0]) < sr.nbytes / 2 and len(run.bicubic) < sr.nbytes / 2
    print(f"a {sr.shape[1]}x{sr.shape[0]} step image: {sr.nbytes // 1024} KiB raw, "
          f"{len(run.images[0]) // 1024} KiB kept")


@pytest.mark.slow
def test_closing_the_browser_mid_run_stops_the_run(tiny_checkpoints, lr_file, tmp_path):
    hook, log = tmp_path / "hook", tmp_path / "steps.log"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_STEPS)  # loaded by the app's Python at start-up
    paths = os.pathsep.join([str(hook), str(REPO), os.environ.get("PYTHONPATH", "")])
    with running_app(tiny_checkpoints, tmp_path / "app", PYTHONPATH=paths, IKC_STEP_LOG=str(log)) as server:
        with open(lr_file, "rb") as handle:
            upload = httpx.post(f"{server.url}gradio_api/upload", files={"files": handle}).json()[0]
        config = httpx.get(f"{server.url}config").json()
        index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "super_resolve")
        image = {"path": upload, "meta": {"_type": "gradio.FileData"}}
        httpx.post(f"{server.url}gradio_api/queue/join", json={
            "data": [image, 4, 15], "fn_index": index, "session_hash": "tab", "event_data": None,
            "trigger_id": None}).raise_for_status()
        with httpx.stream("GET", f"{server.url}gradio_api/queue/data?session_hash=tab", timeout=60) as events:
            next(line for line in events.iter_lines() if "process_generating" in line)
        time.sleep(16 * 0.3)  # as long as the whole run would take
        done = log.read_text().split()
        _, info = connect(server.url, tmp_path / "downloads").predict(handle_file(str(lr_file)), 4, 2,
                                                                       api_name="/super_resolve")
    print(f"browser closed after step 0 of 15: the server ran {len(done)} step(s)")
    assert len(done) <= 3, f"the server went on after the browser closed: steps {done}"
    assert len(info["steps"]) == 3


@pytest.mark.slow
def test_a_full_queue_is_said_clearly_and_no_job_is_lost(tiny_checkpoints, tmp_path, lr_file):
    with running_app(tiny_checkpoints, tmp_path / "app", IKC_QUEUE_SIZE="1") as server:
        outcomes = burst(server.url, lr_file, 15, tmp_path / "downloads")
        full = [o for o in outcomes if o != "ok"]
        print(f"queue of 1, {CLIENTS} clients at once: {outcomes.count('ok')} completed, {len(full)} told "
              f"the queue is full")
        assert len(outcomes) == CLIENTS and outcomes.count("ok") >= 1 and full
        assert all(o == "QueueError: Queue is full! Please try again." for o in full), full
        _, info = connect(server.url, tmp_path / "downloads").predict(handle_file(str(lr_file)), 4, 0,
                                                                       api_name="/super_resolve")
        assert len(info["steps"]) == 1


# ---------------------------------------------------------------- damaged checkpoints, and no pickle


def tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def drop_manifest(path: Path) -> None:
    (path.parent / MANIFEST).unlink()


def pickled(path: Path) -> None:
    """Replace the checkpoint by a pickle that would create a file when unpickled, and list it in the manifest."""
    path.write_bytes(pickle.dumps(Marker(path.parent / "unpickled")))
    write_manifest(path.parent)


class Marker:
    """Unpickling this calls Path.touch: proof that a pickle was loaded."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


FAULTS = {"tampered": (tamper, "does not match its checksum"), "truncated": (truncate, "does not match its checksum"),
          "no manifest": (drop_manifest, "cannot be verified"), "pickle": (pickled, "not a readable IKC checkpoint"),
          "missing": (Path.unlink, "no checkpoint for x4")}


def damaged(tiny_checkpoints: Path, folder: Path, fault: str) -> Path:
    """A copy of the tiny checkpoints with `fault` applied to the SFTMD file."""
    copy = shutil.copytree(tiny_checkpoints, folder)
    FAULTS[fault][0](copy / "sftmd_x4.safetensors")
    return copy


@pytest.mark.parametrize("fault", FAULTS)
def test_cli_says_in_one_line_what_is_wrong_with_a_checkpoint(tiny_checkpoints, lr_file, tmp_path, capsys, fault):
    folder = damaged(tiny_checkpoints, tmp_path / "checkpoints", fault)
    assert main([str(lr_file), "-o", str(tmp_path / "out.png"), "--checkpoints", str(folder)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ") and FAULTS[fault][1] in error
    assert not (folder / "unpickled").exists()


def test_weights_load_without_pickle(tiny_checkpoints, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used to load weights")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert ikc.load(4, tiny_checkpoints).blind


@pytest.mark.slow
def test_app_starts_with_a_tampered_checkpoint_and_says_so(tiny_checkpoints, lr_file, tmp_path):
    folder = damaged(tiny_checkpoints, tmp_path / "checkpoints", "tampered")
    with running_app(folder, tmp_path / "app") as server:
        page = urllib.request.urlopen(server.url + "config", timeout=10).read().decode()
        assert "x4 cannot run:" in page and "does not match its checksum" in page
        with pytest.raises(AppError, match="does not match its checksum"):
            connect(server.url, tmp_path / "downloads").predict(handle_file(str(lr_file)), 4, 2,
                                                                 api_name="/super_resolve")
        log = server.log.read_text()
    assert "IKC Studio: x4 cannot run:" in log and "Traceback" not in log
