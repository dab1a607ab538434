"""The app's main actions timed in a real browser, as a user sees them, and a screenshot of every tab.

    python -m evaluation.browser_timings [--checkpoints checkpoints] [--repeats 2] [--json F] [--screenshots DIR]

Headless Debian chromium (/usr/bin/chromium, never a downloaded browser) at 1400x900 runs Restore (x4, 7 steps,
default settings) on a 128x128 LR photo, then on a region of a 2000x1500 photo at native resolution, each
`repeats` times in a fresh page: ms from the click on Run to the first SR image in the step viewer (step 0) and
to "Done in". The first run includes the app's warm-up. Then full-page screenshots of each tab at 1400x900 and
at a phone's 390x844 (touch, 2x pixels).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from skimage import data

import ikc
from ikc.checkpoint import CHECKPOINT_DIR
from studio.settings import REGION

from .serve import CHROMIUM, CHROMIUM_FLAGS, running_app

DESKTOP = {"viewport": {"width": 1400, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
TIMEOUT_MS = 900_000  # the real networks on a busy CPU
RESULT_WAIT_MS = 10_000  # after "Done", for the final picture to be shown

# From the click on Run: when the step viewer first shows a loaded image, and when the progress says "Done in".
WATCH_RUN = """() => { const seen = window.__seen = {};
  const check = () => { if (seen.click === undefined) return; const now = performance.now() - seen.click;
    const img = document.querySelector('#restore-sr img');
    if (!('first' in seen) && img && img.complete && img.naturalWidth > 0) seen.first = now;
    if (!('done' in seen) && document.querySelector('#restore-progress')?.innerText.includes('Done in'))
      seen.done = now; };
  document.addEventListener('click', (e) => { if (e.target.closest('#restore-run')) seen.click = performance.now(); },
                            true);
  document.addEventListener('load', check, true);  // an image finishing loading changes no node
  new MutationObserver(check).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true}); }"""


def test_photos(folder: Path) -> tuple[Path, Path]:
    """A 128x128 LR PNG (astronaut, blurred with width 2.0, shrunk x4) and a 2000x1500 photo PNG (coffee, enlarged)."""
    lr = ikc.degrade_image(data.astronaut()[:512, :512], ikc.gaussian_kernel(2.0), 4)
    large = np.asarray(Image.fromarray(data.coffee()).resize((2000, 1500), Image.BICUBIC))
    return ikc.save_png(lr, folder / "lr_128.png"), ikc.save_png(large, folder / "photo_2000x1500.png")


def timed_run(page: Page, url: str, photo: Path, region: bool) -> dict:
    """Upload `photo` in a fresh page, Run, and time it; the input's size and the result's (in px)."""
    page.goto(url)
    notice = page.locator("#restore-notice")
    page.locator("#restore-input input[type=file]").set_input_files(str(photo))
    notice.filter(has_text="px, result").wait_for()
    if region:
        page.locator("#restore-mode").get_by_text(REGION).click()
        notice.filter(has_text="px region at").wait_for()
    width, height = map(int, re.search(r"(\d+)x(\d+) px", notice.inner_text()).groups())
    page.evaluate(WATCH_RUN)
    page.click("#restore-run")
    seen = page.wait_for_function("() => 'first' in window.__seen && 'done' in window.__seen && window.__seen",
                                  timeout=TIMEOUT_MS).json_value()
    result = final_image_size(page, [4 * width, 4 * height])
    return {"input": [width, height], "result": result, "first_ms": round(seen["first"]),
            "done_ms": round(seen["done"])}


def final_image_size(page: Page, expected: list[int]) -> list[int]:
    """The shown result's size once it is `expected`, or what it is after RESULT_WAIT_MS: after "Done" the
    browser may still be swapping the last step's picture in (once read mid-update in session 10)."""
    read = ("() => { const img = document.querySelector('#restore-sr img');"
            " return img && img.complete ? [img.naturalWidth, img.naturalHeight] : [0, 0]; }")
    try:
        page.wait_for_function(f"() => JSON.stringify(({read})()) == '{json.dumps(expected, separators=(',', ':'))}'",
                               timeout=RESULT_WAIT_MS)
    except PlaywrightTimeout:
        pass  # reported as it is: the caller compares it with the input's size
    return page.evaluate(read)


def time_action(page: Page, url: str, action: str, photo: Path, region: bool, repeats: int) -> dict:
    """`repeats` timed runs of one action, their medians, and whether each result is the input times 4."""
    runs = [timed_run(page, url, photo, region) for _ in range(repeats)]
    width, height = runs[0]["input"]
    return {"action": action, "size": f"{width}x{height}" + (" region of 2000x1500" if region else ""),
            "runs": [{key: run[key] for key in ("first_ms", "done_ms")} for run in runs],
            "median_first_ms": statistics.median(run["first_ms"] for run in runs),
            "median_done_ms": statistics.median(run["done_ms"] for run in runs),
            "result_is_input_x4": all(run["result"] == [4 * width, 4 * height] for run in runs)}


def screenshot_tabs(browser: Browser, url: str, options: dict, folder: Path, outside: list[str]) -> list[str]:
    """A full-page screenshot of each tab in a fresh context with these options; the files' paths."""
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("request", lambda request: outside.append(request.url) if not local(request.url) else None)
    page.goto(url)
    tabs = page.get_by_role("tab")
    tabs.last.wait_for()
    size = f"{options['viewport']['width']}x{options['viewport']['height']}"
    paths = []
    for index in range(tabs.count()):
        name = tabs.nth(index).inner_text().strip()
        tabs.nth(index).click()
        page.wait_for_timeout(1000)  # plots and images settle
        path = folder / f"{re.sub(r'[^a-z]+', '_', name.lower())}_{size}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(str(path))
    context.close()
    return paths


def local(url: str) -> bool:
    """Whether the page's request stays on this machine."""
    return url.startswith(("http://127.0.0.1", "data:", "blob:"))


def measure(checkpoints: Path, repeats: int, screenshots: Path) -> dict:
    """Serve the app, time Restore on both photos at 1400x900, then screenshot every tab at both sizes."""
    screenshots.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    with tempfile.TemporaryDirectory() as work, running_app(checkpoints, Path(work)) as server, \
            sync_playwright() as playwright:
        lr, large = test_photos(Path(work))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        context = browser.new_context(**DESKTOP)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", lambda request: outside.append(request.url) if not local(request.url) else None)
        actions = [time_action(page, server.url, "Restore, whole photo", lr, False, repeats),
                   time_action(page, server.url, "Restore, region of a large photo", large, True, repeats)]
        context.close()
        shots = [path for options in (DESKTOP, PHONE)
                 for path in screenshot_tabs(browser, server.url, options, screenshots, outside)]
        browser.close()
    return {"checkpoints": str(checkpoints), "viewport": "1400x900", "actions": actions, "screenshots": shots,
            "outside_requests": outside}


def table(results: dict) -> str:
    """Markdown table: one row per run and the medians, in ms after the click on Run."""
    lines = ["| action (x4, 7 steps, 1400x900) | LR size | run | first image (ms) | done (ms) |",
             "|---|---|---|---|---|"]
    for action in results["actions"]:
        rows = [(str(i + 1), run["first_ms"], run["done_ms"]) for i, run in enumerate(action["runs"])]
        for label, first, done in rows + [("median", action["median_first_ms"], action["median_done_ms"])]:
            lines.append(f"| {action['action']} | {action['size']} | {label} | {first:.0f} | {done:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", default=str(CHECKPOINT_DIR))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--screenshots", default=str(Path(tempfile.gettempdir()) / "ikc_screens"))
    args = parser.parse_args(argv)
    results = measure(Path(args.checkpoints), args.repeats, Path(args.screenshots))
    print(table(results))
    for action in results["actions"]:
        if not action["result_is_input_x4"]:
            print(f"WARNING: {action['action']}: the result is not the input enlarged x4")
    print(f"{len(results['screenshots'])} screenshots in {args.screenshots}")
    if results["outside_requests"]:
        print(f"WARNING: the page requested {len(results['outside_requests'])} URLs outside this machine, e.g. "
              f"{results['outside_requests'][0]}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
