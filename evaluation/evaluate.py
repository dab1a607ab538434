"""Evaluate on a benchmark folder with the Gaussian8 protocol (final iteration, never best-of-steps).

    python -m evaluation.evaluate --hr-dir ../shared/benchmarks/Set5 --scale 4 [--sigmas 1.8,2.6] [--noise 0]
                                [--iterations 7] [--json OUT] [--checkpoints DIR] [--methods bicubic,ikc]
                                [--estimation-crop 0]   # the full-image loop, for comparison
                                [--window-quantile 0.8] # the Corrector's windows less textured (an experiment)
                                [--window-groups 3]     # the Corrector reads 3 groups of windows in turn
                                [--window-pool 8]       # it reads the 2 most typical of the 8 most textured
                                [--workers 2]           # pairs shared among 2 processes (2 cores: ~2x faster)
                                [--final-only]          # no per-iteration curve: renders 2 IKC steps, not 8
                                [--jpeg-quality 70]     # the LR images saved as JPEG at this quality

Each modcropped HR image is degraded with each kernel width (ikc.degrade, with its JPEG step when
--jpeg-quality is given: the networks then run with the JPEG SFTMD where --checkpoints has one); methods: bicubic,
SFTMD with the true kernel (sftmd_gt), Predictor only (p_sftmd = IKC step 0) and full IKC (ikc).
PSNR-Y and SSIM-Y with a border of `scale` px.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import ikc
from ikc.checkpoint import CHECKPOINT_DIR
from ikc.pipeline import ESTIMATION_CROP, ESTIMATION_CROPS
from training.dataset import list_images

METHODS = ("bicubic", "sftmd_gt", "p_sftmd", "ikc")


PairScores = tuple[dict[str, tuple[float, float]], list[float], list[float]]


def score_pair(model: ikc.IKC | None, path: Path, sigma: float, index: int, scale: int, noise: float,
               iterations: int, methods: tuple[str, ...], per_iteration: bool = True,
               jpeg_quality: int | None = None) -> PairScores:
    """(PSNR-Y, SSIM-Y) per method for one (image, width) pair, IKC's PSNR-Y per step (empty without IKC or
    per_iteration; without it only steps 0 and last are rendered, about 4x faster at 7 iterations) and the
    estimated kernel width per step (empty without IKC), so a loss can be traced to the photo that drifted."""
    hr = ikc.modcrop(ikc.load_image(path), scale)
    lr = ikc.degrade_image(hr, ikc.gaussian_kernel(float(sigma)), scale, noise, seed=index, jpeg_quality=jpeg_quality)
    model = model.for_input(jpeg_quality) if model is not None else None  # the JPEG SFTMD where one ships

    scores: dict[str, tuple[float, float]] = {}
    if "bicubic" in methods:
        scores["bicubic"] = ikc.psnr_ssim_y(ikc.upscale_bicubic(lr, scale), hr, scale)
    if "sftmd_gt" in methods:
        told = model.super_resolve(lr, ikc.gaussian_kernel(float(sigma)), noise)
        scores["sftmd_gt"] = ikc.psnr_ssim_y(told, hr, scale)
    per_step: list[float] = []
    widths: list[float] = []
    if "ikc" in methods or "p_sftmd" in methods:
        steps = model.run(lr, iterations if "ikc" in methods else 0, render="all" if per_iteration else "none")
        ends = dict.fromkeys((0, len(steps) - 1))  # one render when there is no iteration
        srs = [step.sr for step in steps] if per_iteration else [model.render(lr, steps[i].code) for i in ends]
        step_scores = [ikc.psnr_ssim_y(sr, hr, scale) for sr in srs]
        per_step = [psnr for psnr, _ in step_scores] if per_iteration else []
        widths = [float(step.kernel_width) for step in steps]
        if "p_sftmd" in methods:
            scores["p_sftmd"] = step_scores[0]
        if "ikc" in methods:
            scores["ikc"] = step_scores[-1]
    return scores, per_step, widths


_worker_model: ikc.IKC | None = None


def _start_worker(model: ikc.IKC | None, threads: int) -> None:
    """Process-pool initializer: the worker keeps its copy of the model and uses `threads` torch threads."""
    global _worker_model
    torch.set_num_threads(threads)
    _worker_model = model


def _score_in_worker(task: tuple) -> PairScores:
    return score_pair(_worker_model, *task)


def evaluate(model: ikc.IKC | None, hr_paths: list[Path], scale: int, sigmas: list[float], noise: float,
             iterations: int, methods: tuple[str, ...], workers: int = 1, per_iteration: bool = True,
             jpeg_quality: int | None = None) -> dict:
    """Mean PSNR-Y / SSIM-Y per method over every (image, width) pair, plus IKC's PSNR-Y per iteration, and
    under "pairs" each pair's scores with its estimated width per step.

    With `workers` > 1 the pairs are shared among that many processes (the torch threads split between
    them); each pair keeps its noise seed, so the result is the same as with one worker.
    """
    tasks = [(path, sigma, index, scale, noise, iterations, methods, per_iteration, jpeg_quality)
             for index, (path, sigma) in enumerate((p, s) for p in hr_paths for s in sigmas)]
    progress = dict(total=len(tasks), desc="evaluate", dynamic_ncols=True)
    if workers > 1:
        threads = max(1, torch.get_num_threads() // workers)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_start_worker, initargs=(model, threads)) as pool:
            pair_scores = list(tqdm(pool.map(_score_in_worker, tasks), **progress))
    else:
        pair_scores = [score_pair(model, *task) for task in tqdm(tasks, **progress)]
    result = {
        "scale": scale, "sigmas": [round(float(s), 4) for s in sigmas], "noise": noise, "jpeg_quality": jpeg_quality,
        "iterations": iterations,
        "images": [p.name for p in hr_paths],
        "methods": {m: {"psnr_y": float(np.mean([scores[m][0] for scores, _, _ in pair_scores])),
                        "ssim_y": float(np.mean([scores[m][1] for scores, _, _ in pair_scores]))} for m in methods},
    }
    if "ikc" in methods and per_iteration:
        result["ikc_per_iteration"] = [float(v) for v in np.mean([steps for _, steps, _ in pair_scores], axis=0)]
    result["pairs"] = [{"image": task[0].name, "sigma": float(task[1]),
                        "psnr_y": {m: float(psnr) for m, (psnr, _) in scores.items()},
                        "ikc_per_iteration": [float(v) for v in steps], "width_per_step": widths}
                       for task, (scores, steps, widths) in zip(tasks, pair_scores)]
    return result


def markdown_table(result: dict, name: str) -> str:
    """The result as a markdown table: method | PSNR-Y | SSIM-Y."""
    jpeg = f", JPEG q{result['jpeg_quality']}" if result.get("jpeg_quality") else ""
    lines = [f"| method ({name}, x{result['scale']}{jpeg}) | PSNR-Y | SSIM-Y |", "|---|---|---|"]
    lines += [f"| {m} | {v['psnr_y']:.2f} | {v['ssim_y']:.4f} |" for m, v in result["methods"].items()]
    if "ikc_per_iteration" in result:
        lines.append("\nIKC PSNR-Y per iteration: " + ", ".join(f"{v:.2f}" for v in result["ikc_per_iteration"]))
    return "\n".join(lines)


def parse_sigmas(text: str | None, scale: int) -> list[float]:
    if not text:
        return [float(s) for s in ikc.GAUSSIAN8[scale]]
    return [float(s) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hr-dir", required=True, type=Path, help="folder of HR benchmark images")
    parser.add_argument("--scale", type=int, default=4, choices=ikc.SCALES)
    parser.add_argument("--sigmas", help="comma-separated kernel widths (default: Gaussian8 for the scale)")
    parser.add_argument("--noise", type=float, default=0.0, help="noise sigma on the 0-255 scale")
    parser.add_argument("--jpeg-quality", type=int, help="save each LR image as JPEG at this quality (1-100)")
    parser.add_argument("--iterations", type=int, default=7, help="IKC correction steps")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"subset of {','.join(METHODS)}")
    parser.add_argument("--estimation-crop", type=int, default=ESTIMATION_CROP,
                        help="LR crop (px) the Predictor and Corrector look at; 0 = the whole image (naive loop)")
    parser.add_argument("--estimation-crops", type=int, default=ESTIMATION_CROPS,
                        help="how many textured crops they look at (their estimates are averaged)")
    parser.add_argument("--window-quantile", type=float, default=1.0,
                        help="the Corrector's windows: gradient energy nearest this quantile (1: the most textured, "
                             "the Predictor's windows)")
    parser.add_argument("--window-groups", type=int,
                        help="groups of windows the Corrector reads in turn, one a step (default: as the Corrector's "
                             "checkpoint says; IKC.corrector_window_groups)")
    parser.add_argument("--window-pool", type=int,
                        help="textured windows the Predictor reads, the Corrector reading the most typical of them "
                             "(default: as the Corrector's checkpoint says; IKC.corrector_window_pool)")
    parser.add_argument("--final-only", action="store_true",
                        help="render only IKC's steps 0 (p_sftmd) and last (ikc), no per-iteration curve; ~4x faster")
    parser.add_argument("--halve-reversals", action=argparse.BooleanOptionalAction,
                        help="apply a Corrector update that turns back at half size, or not (default: as the "
                             "Corrector's checkpoint says; IKC.halves_reversals)")
    parser.add_argument("--gaussian-codes", action=argparse.BooleanOptionalAction,
                        help="move every step's code onto the nearest isotropic Gaussian, or not (default: as the "
                             "Corrector's checkpoint says; IKC.keeps_gaussian_codes)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes sharing the (image, width) pairs; same result, faster on several cores")
    args = parser.parse_args(argv)
    ikc.use_available_cpus()  # as the app and the CLI do: the container's quota, or IKC_THREADS
    if args.workers < 1:
        parser.error(f"--workers must be at least 1; got {args.workers}")
    try:
        ikc.check_jpeg_quality(args.jpeg_quality)
    except ValueError as error:
        parser.error(str(error))
    methods = tuple(m.strip() for m in args.methods.split(","))
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    hr_paths = list_images(args.hr_dir)
    if not hr_paths:
        parser.error(f"no images in {args.hr_dir}")
    needs_model = set(methods) - {"bicubic"}
    blind = bool({"p_sftmd", "ikc"} & set(methods))
    model = ikc.load(args.scale, args.checkpoints, require_blind=blind,
                     estimation_crop=args.estimation_crop or None,
                     estimation_crops=args.estimation_crops, window_quantile=args.window_quantile,
                     halve_reversals=args.halve_reversals,
                     gaussian_codes=args.gaussian_codes, window_groups=args.window_groups,
                     window_pool=args.window_pool) if needs_model else None
    started = time.time()
    result = evaluate(model, hr_paths, args.scale, parse_sigmas(args.sigmas, args.scale), args.noise,
                      args.iterations, methods, args.workers, not args.final_only, args.jpeg_quality)
    result["seconds"] = round(time.time() - started, 1)
    result["estimation_crop"] = args.estimation_crop or None
    result["estimation_crops"] = args.estimation_crops if args.estimation_crop else None
    windows_used = model is not None and blind and bool(args.estimation_crop)
    result["window_quantile"] = args.window_quantile if windows_used else None
    result["halve_reversals"] = model.halves_reversals if model is not None and blind else None
    result["gaussian_codes"] = model.keeps_gaussian_codes if model is not None and blind else None
    result["window_groups"] = model.corrector_window_groups if windows_used else None
    result["window_pool"] = model.corrector_window_pool if windows_used else None
    if model is not None:
        result["checkpoint"] = {k: model.metadata.get(k) for k in ("sftmd", "training") if k in model.metadata}
    print(markdown_table(result, args.hr_dir.name))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
