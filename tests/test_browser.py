"""The app in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).

Skipped when /usr/bin/chromium is absent (install it with `apt-get install -y chromium`).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import ikc

from .conftest import REPO, photo, running_app

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent: apt-get install -y chromium")

# Records when texts first appear on the page, in ms after installation (a MutationObserver).
WATCH_TEXTS = """(texts) => { window.__seen = {}; const start = performance.now();
  new MutationObserver(() => { const body = document.body.innerText;
    for (const text of texts) if (!(text in window.__seen) && body.includes(text))
      window.__seen[text] = performance.now() - start; })
  .observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


# Loaded by the app's Python at start-up: logs every full-size SR render (IKC.render) to $IKC_RENDER_LOG.
COUNT_RENDERS = """
import os
import ikc.pipeline
render = ikc.pipeline.IKC.render
def logged_render(self, *args, **kwargs):
    with open(os.environ["IKC_RENDER_LOG"], "a") as log:
        log.write("render\\n")
    return render(self, *args, **kwargs)
ikc.pipeline.IKC.render = logged_render
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
                     IKC_RENDER_LOG=str(render_log)) as server:
        yield server.url


def renders(log: Path) -> int:
    """How many full-size renders the app has done so far."""
    return len(log.read_text().split()) if log.is_file() else 0


@pytest.fixture()
def browser_page(tmp_path):
    """A page in a fresh headless chromium profile, plus the list of every URL it requested."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 1000})
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
    slider.fill("3")  # not rendered yet: shown at once without its image, then rendered and shown
    caption.filter(has_text="Step 3 of 7").wait_for()
    caption.filter(has_text="Step 3 of 7", has_not_text="rendered when").wait_for()
    page.wait_for_function("(s) => { const img = document.querySelector('#restore-sr img');"
                           " return img !== null && img.src !== s; }", arg=final_source)
    assert renders(render_log) - before == 3
    step_3_source = image.get_attribute("src")
    slider.fill("0")
    caption.filter(has_text="Step 0 of 7").wait_for()
    slider.fill("3")  # a second look: the stored image at once
    caption.filter(has_text="Step 3 of 7").wait_for()
    assert "rendered when" not in caption.inner_text()
    page.wait_for_function("(s) => document.querySelector('#restore-sr img')?.src === s", arg=step_3_source,
                           timeout=10_000)
    page.click("#restore-play")  # Play renders 4, 5 and 6 as it reaches them, waiting for each
    caption.filter(has_text="Step 4 of 7").wait_for()
    caption.filter(has_text="Step 7 of 7").wait_for()
    assert renders(render_log) - before == 6, "each step rendered once: 0 and 7 by the run, 3 to 6 when looked at"
    slider.fill("5")
    caption.filter(has_text="Step 5 of 7").wait_for()
    assert "rendered when" not in caption.inner_text()
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
    page.locator("#lab-examples button").first.click()
    page.locator("#lab-lr-note", has_text="LR image 128x128 px").wait_for()
    before = renders(render_log)
    page.locator("#lab-run").click()
    page.locator("#lab-progress", has_text="Done in").wait_for()
    assert renders(render_log) - before == 8, "the lab renders every step (0 to 7) for its scores plot"
    assert "PSNR-Y" in page.locator("#lab-caption").inner_text()
    page.get_by_role("tab", name="Kernel-mismatch lab").click()
    page.locator("#mismatch-examples button").first.click()
    page.locator("#mismatch-run").click()
    page.locator("#mismatch-summary", has_text="Best PSNR-Y").wait_for()
    page.screenshot(path=str(tmp_path / "mismatch.png"), full_page=True)
    assert_offline(requested)
