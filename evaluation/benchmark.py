"""Speed benchmark of blind SR on the CPU: naive IKC loop vs ours vs one SFTMD pass (the floor).

    python -m evaluation.benchmark [--sizes 64,128,256] [--scale 4] [--iterations 7] [--repeats 2]
    python -m evaluation.benchmark --sizes 1024 --repeats 1   # large input: tiled SFTMD, peak memory
    python -m evaluation.benchmark --app --sizes 128     # the app: time to the first step and the result

naive: the whole image through SFTMD and the Corrector at every step (every step rendered).
ours:  the shipped defaults: Predictor and Corrector on textured windows, SFTMD on the whole image for
       the last step only. floor: one SFTMD pass on the whole image. Each case runs in a fresh
process so its peak memory (max RSS) is its own; the time is the best of `repeats` runs after a
warm-up. The naive loop is skipped above NAIVE_MAX_SIZE px (minutes per run).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import ikc
from ikc.checkpoint import CHECKPOINT_DIR

CASES = ("naive", "ours", "floor")
NAIVE_MAX_SIZE = 256


def test_image(size: int, scale: int) -> np.ndarray:
    """A size x size LR image: a scikit-image photo, blurred and downsampled with the shared degradation."""
    from skimage import data

    photo = data.astronaut()
    repeats = -(-size * scale // min(photo.shape[:2]))
    hr = np.tile(photo, (repeats, repeats, 1))[: size * scale, : size * scale]
    return ikc.degrade_image(hr, ikc.gaussian_kernel(2.6), scale)


def time_case(case: str, size: int, scale: int, iterations: int, repeats: int, folder: str) -> dict:
    """Best wall time of one case and this process's peak RSS."""
    ikc.use_available_cpus()  # as the app and the CLI do
    lr = test_image(size, scale)
    model = ikc.load(scale, folder, **({"estimation_crop": None} if case == "naive" else {}))
    runs = {
        "naive": lambda: model.run(lr, iterations, render="all"),
        "ours": lambda: model.run(lr, iterations, render="last"),
        "floor": lambda: model.render(lr, np.zeros(ikc.CODE_LENGTH, np.float32)),
    }
    runs[case]()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runs[case]()
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": case, "size": size, "seconds": min(times), "peak_mib": peak_mib}


def run_isolated(case: str, size: int, args: argparse.Namespace) -> dict:
    """time_case in a fresh Python process, so peak memory is not shared between cases."""
    command = [sys.executable, "-m", "evaluation.benchmark", "--one", case, "--sizes", str(size), "--scale",
               str(args.scale), "--iterations", str(args.iterations), "--repeats", str(args.repeats),
               "--checkpoints", str(args.checkpoints)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def app_latency(folder: str, size: int, iterations: int, repeats: int) -> list[tuple[float, float]]:
    """(first step, final result) seconds for /super_resolve on a running app.py, after one warm-up call."""
    from gradio_client import Client, handle_file

    from .serve import running_app

    with tempfile.TemporaryDirectory() as work, running_app(Path(folder), Path(work)) as server:
        client = Client(server.url, verbose=False, analytics_enabled=False, download_files=work)
        lr_path = ikc.save_png(test_image(size, 4), Path(work) / "lr.png")
        timings = []
        for _ in range(repeats + 1):
            start, first = time.perf_counter(), None
            for _update in client.submit(handle_file(str(lr_path)), 4, iterations, api_name="/super_resolve"):
                first = first or time.perf_counter() - start
            timings.append((first, time.perf_counter() - start))
    return timings[1:]


def table(results: list[dict], iterations: int, scale: int) -> str:
    """Markdown table with times, ratios and peak memory per LR size."""
    lines = [f"| LR size (x{scale}, {iterations} steps) | naive loop | ours | one SFTMD pass | ours / naive | "
             "ours / pass | peak MiB (naive / ours / pass) |", "|---|---|---|---|---|---|---|"]
    for size in sorted({r["size"] for r in results}):
        by = {r["case"]: r for r in results if r["size"] == size}
        ours, floor = by["ours"]["seconds"], by["floor"]["seconds"]
        naive = f"{by['naive']['seconds']:.2f} s" if "naive" in by else "not run"
        ratio = f"{ours / by['naive']['seconds']:.2f}" if "naive" in by else "-"
        peaks = " / ".join(f"{by[c]['peak_mib']:.0f}" if c in by else "-" for c in CASES)
        lines.append(f"| {size}x{size} | {naive} | {ours:.2f} s | {floor:.2f} s | {ratio} | {ours / floor:.2f} | "
                     f"{peaks} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,128,256", help="comma-separated LR sizes")
    parser.add_argument("--scale", type=int, default=4, choices=ikc.SCALES)
    parser.add_argument("--iterations", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--checkpoints", default=str(CHECKPOINT_DIR))
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--app", action="store_true", help="instead: latency of app.py's /super_resolve (x4)")
    parser.add_argument("--one", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.app:
        for size in sizes:
            for first, last in app_latency(args.checkpoints, size, args.iterations, args.repeats):
                print(f"app /super_resolve {size}x{size} x4, {args.iterations} steps: first step after {first:.2f} s, "
                      f"final result after {last:.2f} s")
        return
    if args.one:
        print(json.dumps(time_case(args.one, sizes[0], args.scale, args.iterations, args.repeats, args.checkpoints)))
        return
    print(f"torch {torch.__version__}, {ikc.use_available_cpus()} threads")
    results = [run_isolated(case, size, args) for size in sizes for case in CASES
               if case != "naive" or size <= NAIVE_MAX_SIZE]
    print(table(results, args.iterations, args.scale))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
