"""Does the Corrector converge? Per correction step, the mean kernel-width error and PSNR-Y from several starts.

    python -m evaluation.convergence --hr-dir DIR --scale 4 --starts predictor,1.0,4.0 [--json F] [--plot F.png]
                                   [--widths 1.8,2.6,3.2] [--crop 192] [--limit 15] [--iterations 7]
                                   [--checkpoints DIR] [--no-psnr] [--predictor-noise] [--halve-reversals]
                                   [--estimation-crop 0] [--estimation-crops N] [--window-quantile Q]
                                   [--window-groups G] [--window-pool P]
                                   [--window-gap] [--window-readings N] [--best-render]
                                   [--jpeg-quality Q]

Each HR photo's centre crop is blurred with each width (default: three of the scale's Gaussian8 widths, its
ends and middle) and shrunk with the one `ikc` degradation. IKC then runs from each start: `predictor` (step 0
is the Predictor's guess) or a Gaussian of the given width (noise 0). The error is |estimated - true| width in
HR px, averaged over all (photo, width) cases. Choose with held-out training photos or the development set
(BSD58, Urban15); report on Set5/Set14. P/C training validates with `convergence` on its held-out photos.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import ikc
from ikc.checkpoint import CHECKPOINT_DIR
from ikc.imageio import to_tensor
from ikc.pipeline import textured_windows
from training.dataset import list_images

PREDICTOR = "predictor"
FAR_STARTS = {2: (0.5, 2.0), 3: (0.8, 3.0), 4: (1.0, 4.0)}  # near both ends of each scale's training range


@dataclass(frozen=True)
class Case:
    """One degraded photo with its true blur width."""

    name: str
    hr: np.ndarray  # (H, W, 3) uint8, modcropped
    lr: np.ndarray  # (H/s, W/s, 3) uint8
    width: float
    jpeg_quality: int | None = None  # the LR image was saved as JPEG at this quality


def make_cases(photos: list[tuple[str, np.ndarray]], scale: int, widths: list[float], crop: int,
               qualities: Sequence[int | None] = (None,)) -> list[Case]:
    """Each photo's centre crop (modcropped) degraded with each width, no noise, stored lossless (None) or as
    JPEG at each of `qualities`."""
    cases = []
    for name, image in photos:
        hr = ikc.modcrop(ikc.centre_crop(image, crop), scale)
        for width in widths:
            lr = ikc.degrade_image(hr, ikc.gaussian_kernel(float(width)), scale)
            cases += [Case(name, hr, lr if q is None else ikc.jpeg_compress(lr, q), float(width), q)
                      for q in qualities]
    return cases


def parse_starts(text: str) -> list[str]:
    """"predictor,1.0,4.0" -> ["predictor", "1.0", "4.0"]; ValueError names a start that is neither."""
    starts = [item.strip() for item in text.split(",") if item.strip()]
    for start in starts:
        if start != PREDICTOR:
            try:
                if not float(start) > 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"--starts takes 'predictor' or positive kernel widths; got {start!r}") from None
    if not starts:
        raise ValueError("--starts is empty")
    return starts


def start_code(model: ikc.IKC, start: str) -> np.ndarray | None:
    """The code of a fixed start (a Gaussian of that width, noise 0), or None for the Predictor's guess."""
    return None if start == PREDICTOR else model.code_for(ikc.gaussian_kernel(float(start)))


def trajectory(model: ikc.IKC, case: Case, start: str, iterations: int,
               psnr: bool = True) -> tuple[list[float], list[float]]:
    """Estimated widths at steps 0..iterations, and PSNR-Y of each step's SR image (empty without psnr)."""
    steps = model.for_input(case.jpeg_quality).run(case.lr, iterations, init_code=start_code(model, start),
                                                   render="all" if psnr else "none")
    widths = [step.kernel_width for step in steps]
    scores = [ikc.psnr_y(step.sr, case.hr, model.scale) for step in steps] if psnr else []
    return widths, scores


def convergence(model: ikc.IKC, cases: list[Case], starts: list[str], iterations: int = 7,
                psnr: bool = True) -> dict[str, dict[str, list[float]]]:
    """Per start: mean |width error| at each step ("error"), its ratio to step 0's at the last step ("ratio"),
    the mean signed error per step ("bias": > 0 reads too wide, which costs more PSNR than too narrow), the same
    per true width ("bias_by_width": where the loop settles for each) and mean PSNR-Y per step ("psnr", when
    asked)."""
    results = {}
    for start in starts:
        errors, scores = [], []
        for case in cases:
            widths, case_scores = trajectory(model, case, start, iterations, psnr)
            errors.append(np.array(widths) - case.width)
            scores.append(case_scores)
        errors, truths = np.array(errors), np.array([case.width for case in cases])
        error, bias = np.mean(np.abs(errors), axis=0), np.mean(errors, axis=0)
        results[start] = {"error": [round(float(e), 4) for e in error],
                          "ratio": round(float(error[-1] / max(error[0], 1e-6)), 4),
                          "bias": [round(float(b), 4) for b in bias],
                          "bias_by_width": {str(w): [round(float(b), 4) for b in np.mean(errors[truths == w], axis=0)]
                                            for w in sorted(set(truths.tolist()))}}
        if psnr:
            results[start]["psnr"] = [round(float(p), 3) for p in np.mean(scores, axis=0)]
    return results


def window_gap(model: ikc.IKC, whole_image: ikc.IKC, cases: list[Case], iterations: int = 7) -> dict[str, float]:
    """Mean |final width| difference between the fast loop (textured windows) and the whole-image loop, both
    from the Predictor's guess, and each one's mean final error."""
    fast = np.array([trajectory(model, case, PREDICTOR, iterations, False)[0][-1] for case in cases])
    whole = np.array([trajectory(whole_image, case, PREDICTOR, iterations, False)[0][-1] for case in cases])
    truth = np.array([case.width for case in cases])
    return {"gap": round(float(np.abs(fast - whole).mean()), 4), "max_gap": round(float(np.abs(fast - whole).max()), 4),
            "fast_error": round(float(np.abs(fast - truth).mean()), 4),
            "whole_error": round(float(np.abs(whole - truth).mean()), 4)}


def window_readings(model: ikc.IKC, cases: list[Case], count: int, iterations: int = 7) -> list[dict]:
    """Per case, where the Corrector settles reading each of the `count` most textured windows alone (best
    first), started from the true Gaussian: a window's own bias, which the loop's window pick can only average."""
    rows = []
    for case in cases:
        size = model.estimation_crop or max(case.lr.shape[:2])  # no windows: the whole image
        corners = textured_windows(to_tensor(case.lr), size, count)
        true_code = model.code_for(ikc.gaussian_kernel(case.width))
        readings = [model.run(case.lr[top:top + size, left:left + size], iterations, init_code=true_code,
                              render="none")[-1].kernel_width for top, left in corners]
        rows.append({"name": case.name, "width": case.width, "readings": [round(r, 3) for r in readings]})
    return rows


def best_render_offsets(model: ikc.IKC, cases: list[Case], offsets: np.ndarray) -> dict[float, float]:
    """Per true width: the mean offset (assumed - true width) at which SFTMD, told a Gaussian of the assumed
    width, scores its best PSNR-Y; the width a Corrector would have to settle on for the best picture."""
    best: dict[float, list[float]] = {}
    for case in cases:
        scores = [ikc.psnr_y(model.super_resolve(case.lr, ikc.gaussian_kernel(max(case.width + float(o), 0.2))),
                             case.hr, model.scale) for o in offsets]
        best.setdefault(case.width, []).append(float(offsets[int(np.argmax(scores))]))
    return {width: round(float(np.mean(values)), 3) for width, values in best.items()}


def default_widths(scale: int) -> list[float]:
    """Three of the scale's Gaussian8 widths: both ends and the middle."""
    widths = ikc.GAUSSIAN8[scale]
    return [round(float(widths[0]), 3), round(float((widths[0] + widths[-1]) / 2), 3), round(float(widths[-1]), 3)]


def plot(results: dict[str, dict[str, list[float]]], title: str, path: Path) -> Path:
    """Mean width error (and PSNR-Y, when measured) against the step, one line per start."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_psnr = all("psnr" in r for r in results.values())
    figure, axes = plt.subplots(1, 2 if with_psnr else 1, figsize=(11 if with_psnr else 6, 4), squeeze=False)
    for start, result in results.items():
        label = "Predictor's guess" if start == PREDICTOR else f"width {start}"
        axes[0, 0].plot(result["error"], marker="o", label=label)
        if with_psnr:
            axes[0, 1].plot(result["psnr"], marker="o", label=label)
    axes[0, 0].set(xlabel="correction step", ylabel="mean |width error| (HR px)", ylim=(0, None))
    if with_psnr:
        axes[0, 1].set(xlabel="correction step", ylabel="mean PSNR-Y (dB)")
    for axis in axes[0]:
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hr-dir", required=True, type=Path, help="folder of HR photos")
    parser.add_argument("--scale", type=int, default=4, choices=ikc.SCALES)
    parser.add_argument("--starts", default=None, help="comma list: predictor and/or widths (default: predictor "
                                                       "and FAR_STARTS, near the ends of the training range)")
    parser.add_argument("--widths", help="true widths, comma list (default: Gaussian8 ends and middle)")
    parser.add_argument("--crop", type=int, default=192, help="HR centre crop in px")
    parser.add_argument("--limit", type=int, help="use the first N photos by name")
    parser.add_argument("--iterations", type=int, default=7)
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINT_DIR)
    parser.add_argument("--no-psnr", action="store_true", help="widths only (no full renders)")
    parser.add_argument("--halve-reversals", action=argparse.BooleanOptionalAction,
                        help="apply a Corrector update that turns back at half size, or not (default: as the "
                             "Corrector's checkpoint says; IKC.halves_reversals)")
    parser.add_argument("--gaussian-codes", action=argparse.BooleanOptionalAction,
                        help="move every step's code onto the nearest isotropic Gaussian, or not (default: as the "
                             "Corrector's checkpoint says; IKC.keeps_gaussian_codes)")
    parser.add_argument("--predictor-noise", action="store_true", help="the Predictor's noise level, not the image's")
    parser.add_argument("--estimation-crop", type=int, help="window size in LR px (0: the whole image)")
    parser.add_argument("--estimation-crops", type=int, help="how many windows the Predictor and Corrector read")
    parser.add_argument("--window-quantile", type=float,
                        help="the Corrector's windows: gradient energy nearest this quantile (1: the most textured)")
    parser.add_argument("--window-groups", type=int,
                        help="groups of windows the Corrector reads in turn, one a step (default: as its checkpoint "
                             "says; IKC.corrector_window_groups)")
    parser.add_argument("--window-pool", type=int,
                        help="textured windows the Predictor reads, the Corrector reading the most typical of them "
                             "(default: as its checkpoint says; IKC.corrector_window_pool)")
    parser.add_argument("--window-gap", action="store_true",
                        help="also compare the final width of the fast loop with the whole-image loop's")
    parser.add_argument("--window-readings", type=int, metavar="N",
                        help="also give, per case, the width the Corrector settles on reading each of the N most "
                             "textured windows alone, from the true width")
    parser.add_argument("--best-render", action="store_true",
                        help="also find, per true width, the assumed width offset SFTMD renders best (-0.6..0.6)")
    parser.add_argument("--jpeg-quality", type=int, help="save each LR image as JPEG at this quality (30-95)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    ikc.use_available_cpus()
    options = {"noise_from_image": not args.predictor_noise, "halve_reversals": args.halve_reversals,
               "gaussian_codes": args.gaussian_codes, "window_groups": args.window_groups,
               "window_pool": args.window_pool}
    if args.estimation_crop is not None:
        options["estimation_crop"] = args.estimation_crop or None
    if args.estimation_crops is not None:
        options["estimation_crops"] = args.estimation_crops
    if args.window_quantile is not None:
        options["window_quantile"] = args.window_quantile
    model = ikc.load(args.scale, args.checkpoints, **options)
    starts = parse_starts(args.starts or ",".join([PREDICTOR, *map(str, FAR_STARTS[args.scale])]))
    widths = [float(w) for w in args.widths.split(",")] if args.widths else default_widths(args.scale)
    paths = list_images(args.hr_dir)[:args.limit]
    if not paths:
        raise SystemExit(f"no images in {args.hr_dir}")
    cases = make_cases([(p.name, ikc.load_image(p)) for p in paths], args.scale, widths, args.crop,
                       [ikc.check_jpeg_quality(args.jpeg_quality)])
    results = convergence(model, cases, starts, args.iterations, not args.no_psnr)
    for start, result in results.items():
        print(f"start {start:>9}: error " + " ".join(f"{e:.2f}" for e in result["error"])
              + f"  (ratio {result['ratio']:.2f})  bias " + " ".join(f"{b:+.2f}" for b in result["bias"])
              + ("  PSNR-Y " + " ".join(f"{p:.2f}" for p in result["psnr"]) if "psnr" in result else ""))
        for width, bias in result["bias_by_width"].items():
            print(f"  true width {width}: bias " + " ".join(f"{b:+.2f}" for b in bias))
    summary = {"hr_dir": str(args.hr_dir), "scale": args.scale, "photos": len(paths), "widths": widths,
               "crop": args.crop, "jpeg_quality": args.jpeg_quality, "iterations": args.iterations,
               "checkpoints": str(args.checkpoints),
               "options": {**options, "halve_reversals": model.halves_reversals,
                           "gaussian_codes": model.keeps_gaussian_codes,
                           "window_quantile": model.window_quantile, "window_groups": model.corrector_window_groups,
                           "window_pool": model.corrector_window_pool,
                           "estimation_crop": model.estimation_crop,
                           "estimation_crops": model.estimation_crops}, "results": results}
    if args.window_gap:
        whole_image = ikc.load(args.scale, args.checkpoints, **{**options, "estimation_crop": None})
        summary["window_gap"] = window_gap(model, whole_image, cases, args.iterations)
        print("fast loop vs whole image, final width:", summary["window_gap"])
    if args.window_readings:
        summary["window_readings"] = window_readings(model, cases, args.window_readings, args.iterations)
        for row in summary["window_readings"]:
            print(f"{row['name']} at {row['width']}: windows read", " ".join(f"{r:.2f}" for r in row["readings"]))
    if args.best_render:
        summary["best_render_offset"] = best_render_offsets(model, cases, np.round(np.arange(-0.6, 0.61, 0.1), 2))
        print("offset of the width SFTMD renders best, per true width:", summary["best_render_offset"])
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    if args.plot:
        plot(results, f"x{args.scale}, {args.hr_dir.name}: {len(paths)} photos x widths {widths}", args.plot)


if __name__ == "__main__":
    main()
