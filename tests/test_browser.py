"""The app in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).

Skipped when /usr/bin/chromium is absent (install it with `apt-get install -y chromium`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ikc
from evaluation.serve import CHROMIUM, CHROMIUM_FLAGS

from .conftest import REPO, photo, running_app

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: apt-get install -y chromium")

# Records when texts first appear on the page, in ms after installation (a MutationObserver).
WATCH_TEXTS = """(texts) => { window.__seen = {}; const start = performance.now();
  new MutationObserver(() => { const body = document.body.innerText;
    for (const text of texts) if (!(text in window.__seen) && body.includes(text))
      window.__seen[text] = performance.now() - start; })
  .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


# Loaded by the app's Python at start-up: logs every full-size SR render (IKC.render) to $IKC_RENDER_LOG, and
# makes each render take $IKC_RENDER_DELAY seconds more and each step $IKC_STEP_DELAY more (so that a test can
# see the busy state and press Stop mid-run with the tiny networks, which are much faster than the real ones).
COUNT_RENDERS = """
import os
import time
import ikc.pipeline
render, steps = ikc.pipeline.IKC.render, ikc.pipeline.IKC.steps
def logged_render(self, *args, **kwargs):
    with open(os.environ["IKC_RENDER_LOG"], "a") as log:
        log.write("render\\n")
    time.sleep(float(os.environ.get("IKC_RENDER_DELAY", 0)))
    return render(self, *args, **kwargs)
def slow_steps(self, *args, **kwargs):
    for step in steps(self, *args, **kwargs):
        time.sleep(float(os.environ.get("IKC_STEP_DELAY", 0)))
        yield step
ikc.pipeline.IKC.render, ikc.pipeline.IKC.steps = logged_render, slow_steps
"""


@pytest.fixture(scope="module")
def render_log(tmp_path_factory) -> Path:
    """The file the module's app logs its full-size renders to, one line each."""
    return tmp_path_factory.mktemp("renders") / "renders.log"


@pytest.fixture(scope="module")
def app_url(tiny_checkpoints, tmp_path_factory, render_log) -> Iterator[str]:
    hook = tmp_path_factory.mktemp("hook")
    (hook / "sitecustomize.py").write_text(COUNT_RENDERS)
    paths = os.pathsep.join([str(hook), str(REPO), os.environ.get("PYTHONPATH", "")])
    with running_app(tiny_checkpoints, tmp_path_factory.mktemp("browser-app"), PYTHONPATH=paths,
                     IKC_RENDER_LOG=str(render_log), IKC_RENDER_DELAY="0.6", IKC_STEP_DELAY="0.5") as server:
        yield server.url


def renders(log: Path) -> int:
    """How many full-size renders the app has done so far."""
    return len(log.read_text().split()) if log.is_file() else 0


@pytest.fixture()
def browser_page(tmp_path, request):
    """A page in a fresh headless chromium profile, plus the list of every URL it requested; 1400x1000, or a
    phone's 390x844 for a test marked `phone`."""
    sync_api = pytest.importorskip("playwright.sync_api")
    viewport = {"width": 390, "height": 844} if request.node.get_closest_marker("phone") else \
        {"width": 1400, "height": 1000}
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport=viewport)
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(120_000)  # generous: CI machines may be busy
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        yield page, requested
        context.close()


def assert_offline(requested: list[str]) -> None:
    outside = [url for url in requested if not url.startswith(("http://127.0.0.1", "data:", "blob:"))]
    assert not outside, f"the page loaded resources from outside: {outside[:5]}"


def test_restore_streams_steps_and_renders_a_step_once_when_looked_at(app_url, browser_page, render_log, tmp_path):
    page, requested = browser_page
    lr = ikc.save_png(ikc.degrade_image(photo("astronaut"), ikc.gaussian_kernel(2.0), 4), tmp_path / "lr.png")
    page.goto(app_url)
    page.locator("#restore-input input[type=file]").set_input_files(str(lr))
    page.locator("#restore-notice", has_text="128x128 px").wait_for()
    page.evaluate(WATCH_TEXTS, ["Step 0 of 7 done", "Step 7 of 7 done", "Done in"])
    before = renders(render_log)
    page.click("#restore-run")
    page.locator("#restore-progress", has_text="Done in").wait_for()
    seen = page.evaluate("window.__seen")
    assert seen["Step 0 of 7 done"] <= seen["Step 7 of 7 done"] <= seen["Done in"]  # streamed, in order
    assert renders(render_log) - before == 2, "the run renders step 0 and the final step only"

    caption, image = page.locator("#restore-caption"), page.locator("#restore-sr img")
    slider = page.locator("#restore-step input[type=range]")
    assert "Step 7 of 7" in caption.inner_text()
    final_source = image.get_attribute("src")
    slider.fill("3")  # not rendered yet: the final image stays, dimmed and labelled, until step 3's is rendered
    caption.filter(has_text="Step 3 of 7").wait_for()
    busy = page.locator("#restore-sr.busy")
    busy.wait_for()
    assert busy.locator("img").get_attribute("src") == final_source, "the last image stays while step 3 renders"
    assert "Rendering step 3... (showing step 7 meanwhile)" in page.locator("#restore-sr").inner_text()
    caption.filter(has_text="Step 3 of 7", has_not_text="being rendered").wait_for()
    page.wait_for_function("(s) => { const img = document.querySelector('#restore-sr img');"
                           " return img !== null && img.src !== s; }", arg=final_source)
    assert renders(render_log) - before == 3
    step_3_source = image.get_attribute("src")
    slider.fill("0")
    caption.filter(has_text="Step 0 of 7").wait_for()
    slider.fill("3")  # a second look: the stored image at once
    caption.filter(has_text="Step 3 of 7").wait_for()
    assert "being rendered" not in caption.inner_text()
    page.wait_for_function("(s) => document.querySelector('#restore-sr img')?.src === s", arg=step_3_source,
                           timeout=10_000)
    page.click("#restore-play")  # Play renders 4, 5 and 6 as it reaches them, waiting for each
    caption.filter(has_text="Step 4 of 7").wait_for()
    caption.filter(has_text="Step 7 of 7").wait_for()
    assert renders(render_log) - before == 6, "each step rendered once: 0 and 7 by the run, 3 to 6 when looked at"
    slider.fill("5")
    caption.filter(has_text="Step 5 of 7").wait_for()
    assert "being rendered" not in caption.inner_text()
    assert page.locator("#restore-examples").is_visible()
    with page.expect_download() as download_info:
        page.click("#restore-download")
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    with Image.open(saved) as result:
        assert saved.name == "lr_ikc_x4.png" and result.format == "PNG" and result.size == (512, 512)
    screenshot = tmp_path / "restore.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    assert_offline(requested)


def test_unreadable_upload_shows_a_message(app_url, browser_page, tmp_path):
    page, requested = browser_page
    fake = tmp_path / "holiday.png"
    fake.write_text("this is text, not an image")
    page.goto(app_url)
    page.locator("#restore-input input[type=file]").set_input_files(str(fake))
    page.locator("#restore-notice", has_text="not an image file").wait_for()
    page.click("#restore-run")
    page.get_by_text("not an image file").last.wait_for()
    assert_offline(requested)


def test_labs_show_truth_scores_and_the_mismatch_curve(app_url, browser_page, render_log, tmp_path):
    page, requested = browser_page
    page.goto(app_url)
    page.get_by_role("tab", name="Degradation lab").click()
    sizes = page.evaluate("() => Array.from(document.querySelectorAll('.min_value, .max_value'))"
                          ".filter(e => e.offsetParent).map(e => parseFloat(getComputedStyle(e).fontSize))")
    assert len(sizes) >= 8 and min(sizes) >= 14, f"the sliders' end labels are readable: {sizes} px"
    page.locator("#lab-examples button").first.click()
    page.locator("#lab-lr-note", has_text="LR image 128x128 px").wait_for()
    before = renders(render_log)
    page.locator("#lab-run").click()
    page.locator("#lab-progress", has_text="Done in").wait_for()
    page.locator("#lab-side-by-side", has_text="SFTMD told the true kernel").wait_for()
    assert renders(render_log) - before == 9, "every step (0 to 7) for the scores plot, and the true kernel's"
    assert "PSNR-Y" in page.locator("#lab-caption").inner_text()
    page.locator("#lab-export").click()
    exports = page.locator("#lab-exports")
    exports.filter(has_text=".gif").wait_for()  # the file list shows each name as stem and suffix
    for name in ("ikc_steps.gif", "ikc_curves.png", "ikc_steps.csv", "ikc_steps.json"):
        assert exports.locator(f"a[href$='{name}']").count() >= 1, f"no download link for {name}"
    page.locator("#lab-examples button").nth(1).click()  # another photo after the run: the steps are marked stale
    page.locator("#lab-caption", has_text="The settings have changed since this run").wait_for()
    page.get_by_role("tab", name="Kernel-mismatch lab").click()
    page.locator("#mismatch-examples button").first.click()
    page.locator("#mismatch-run").click()
    page.locator("#mismatch-summary", has_text="Best PSNR-Y").wait_for()
    page.screenshot(path=str(tmp_path / "mismatch.png"), full_page=True)
    assert_offline(requested)


def test_stop_ends_a_run_after_a_step_without_an_error_and_keeps_its_steps(app_url, browser_page, tmp_path):
    page, requested = browser_page
    lr = ikc.save_png(ikc.degrade_image(photo("astronaut"), ikc.gaussian_kernel(2.0), 4), tmp_path / "lr.png")
    page.goto(app_url)
    stop = page.locator("#restore-stop")
    assert stop.is_disabled(), "nothing runs yet"
    page.locator("#restore-input input[type=file]").set_input_files(str(lr))
    page.locator("#restore-notice", has_text="128x128 px").wait_for()
    page.locator("#restore-run").click()
    # Any step before the last (a loaded browser may never paint one particular 0.5-s progress line).
    page.locator("#restore-progress", has_text=re.compile(r"Step [1-5] of 7 done")).wait_for()
    stop.click()
    progress = page.locator("#restore-progress")
    progress.filter(has_text="Stopped after step").wait_for()
    assert "Error" not in page.locator("#restore-progress").locator("..").inner_text()
    assert stop.is_disabled()
    page.locator("#restore-step input[type=range]").fill("1")  # the steps so far stay viewable
    page.locator("#restore-caption", has_text="Step 1 of 7").wait_for()
    assert_offline(requested)


def test_a_region_of_a_large_photo_comes_back_at_native_size(app_url, browser_page, tmp_path):
    page, requested = browser_page
    large = ikc.save_png(np.asarray(Image.fromarray(photo("astronaut")).resize((1200, 900))), tmp_path / "big.png")
    page.goto(app_url)
    page.locator("#restore-input input[type=file]").set_input_files(str(large))
    page.locator("#restore-notice", has_text="downscaled from 1200x900").wait_for()
    page.locator("#restore-mode").get_by_text("A region at full resolution").click()
    page.locator("#restore-notice", has_text="192x192 px region at (504, 354)").wait_for()
    picker = page.locator("#restore-picker img")
    picker.click(position={"x": 5, "y": 5})  # the top-left corner: the region moves there
    page.locator("#restore-notice", has_text="192x192 px region at (0, 0)").wait_for()
    page.locator("#restore-run").click()
    page.locator("#restore-progress", has_text="Done in").wait_for()
    with page.expect_download() as download_info:
        page.click("#restore-download")
    saved = tmp_path / "region.png"
    download_info.value.save_as(saved)
    with Image.open(saved) as result:
        assert result.size == (768, 768), "the 192-px region enlarged x4, not the downscaled photo"
    assert_offline(requested)


@pytest.mark.phone
def test_a_phone_shows_every_tab_and_run_scrolls_to_the_steps(app_url, browser_page, tmp_path):
    page, requested = browser_page
    page.goto(app_url)
    page.get_by_role("tab", name="About the model").wait_for()
    tabs = page.get_by_role("tab")
    names = [tabs.nth(i).inner_text() for i in range(tabs.count())]
    assert names == ["Restore", "Degradation lab", "Kernel-mismatch lab", "About the model"]
    assert all(tabs.nth(i).is_visible() for i in range(tabs.count())), "no tab hidden behind a menu"
    height = page.evaluate("document.documentElement.scrollHeight")  # 3106 px when empty boxes kept their height
    assert height < 2400, f"the page before a run is {height} px long: empty result boxes should shrink"
    page.locator("#restore-examples button").first.click()
    page.locator("#restore-notice", has_text="px").wait_for()
    page.locator("#restore-run").click()
    page.locator("#restore-progress", has_text="Done in").wait_for()
    top = page.evaluate("document.getElementById('restore-step').getBoundingClientRect().top")
    assert 0 <= top < 844, "the steps are on screen after Run, not a screen below it"
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    page.get_by_role("tab", name="About the model").click()
    page.locator("#model-summary", has_text="Spatial Feature Transform").wait_for()
    assert_offline(requested)
