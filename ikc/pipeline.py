"""The IKC correction loop as a public API: load a scale, run t steps, get every step back.

    model = ikc.load(scale=4)
    for step in model.steps(lr_pixels, iterations=7):   # streams, one Step per iteration
        print(step.index, step.kernel_width, step.noise_sigma)
    sr = model.super_resolve(lr_pixels, kernel=ikc.gaussian_kernel(2.0))   # non-blind

The kernel is one per image, so the Predictor and Corrector work on a few crops of the LR image
(`estimation_crops` windows of `estimation_crop` px, their estimates averaged: the most textured ones for the
Predictor and, by default, the Corrector); SFTMD runs on the whole image only for the steps that are
shown. Where the image's flat regions show clear noise
(ikc.noise reads at least NOISE_TRUST_LEVEL), step 0 takes that noise level instead of the Predictor's,
which reads noise from textured windows and underestimates it. With halve_reversals, a Corrector update
that turns back (the width moves the other way than at the step before, so that step went past the
kernel) is applied at half size: the midpoint of a jump to and fro (training/LOG.md, session 6; with gaussian_codes the
turn is read on the width after the move onto the Gaussians, session 18). With
gaussian_codes, each corrected code is moved onto the nearest isotropic Gaussian, the only kernels SFTMD and the
PCA know: a Corrector's updates otherwise drift off that curve, where SFTMD renders a right width badly
(training/LOG.md, session 17). Both are properties of a Corrector (how it was trained, whether it overshoots), so
by default its checkpoint says (`training.export --halve-reversals`, `--gaussian-codes`). With window_groups
g > 1 (also in the checkpoint, `--window-groups`) the Predictor averages over g x estimation_crops textured windows
and the Corrector reads them in g groups, one group a step (ranks g apart in each); each step moves the code to the
mean of every group's latest reading (its code plus its update), so the estimate rests on more of the image at the
cost of the same window pixels per step; moving to one group's reading alone zigzags (an experiment: it reads
smooth photos wide, so no shipped Corrector uses it; training/LOG.md, session 24). With window_pool p above
estimation_crops (also in the checkpoint, `--window-pool`) the Predictor averages its guesses over the p most
textured windows and the Corrector reads the estimation_crops of them whose guessed width is nearest the guesses'
median: typical textured windows rather than the strongest edges, which the x4 Corrector reads narrow (training/LOG.md,
session 26). With window_quantile below 1 the
Corrector reads less textured windows than the Predictor's (an experiment: no scale gains by it; session 18).

An LR image stored as JPEG goes to `model.for_input(quality)`: the same loop, rendered by an SFTMD trained on
JPEG inputs where one ships (sftmd_x{s}_jpeg), which does not enlarge the 8x8 blocks the lossless one draws. The
Corrector still reads the lossless SFTMD's SR crops: it was trained on those, and misreads the smoother ones of
the JPEG SFTMD (training/LOG.md, session 12).
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .archs import SCALES, SFTMD, Corrector, EstimatorConfig, Predictor, SFTMDConfig, compression_level
from .checkpoint import (
    CHECKPOINT_DIR,
    CheckpointError,
    estimators_path,
    jpeg_estimators_path,
    jpeg_sftmd_path,
    load_module,
    read_file,
    read_pca,
    sftmd_path,
)
from .imageio import to_pixels, to_tensor
from .kernel_code import (
    NOISE_CODE_SCALE,
    PCA_COMPONENTS,
    KernelPCA,
    decode_kernel,
    decode_noise,
    encode,
    estimate_width,
    mean_radius_gaussian_code_torch,
    nearest_gaussian_code_torch,
    nearest_gaussian_width,
    spread_projection,
)
from .noise import estimate_noise

CL = torch.channels_last
MIN_LR_SIZE = 16  # smaller LR images give a blob, not a picture: every tab, the API and the CLI refuse them
TILE_MEMORY_BYTES = 1.5 * 2 ** 30  # at most this much for SFTMD activations; larger images go in tiles
MAX_ITERATIONS = 50
# Two 28-px windows: chosen on held-out training photos among the settings that keep a 128-px image
# within 2x one SFTMD pass (training/LOG.md); the Predictor and Corrector train on 32-px patches.
ESTIMATION_CROP = 28
ESTIMATION_CROPS = 2
# With gaussian_codes: a move onto the L2-nearest Gaussian of under STALL_WIDTH px while the update's kernel reads
# over ESCAPE_WIDTH px from the current width by its mean radius is a stall (the update's sharp peak pins the L2
# match), and the code moves by the mean radius instead (chosen on held-out photos and BSD58; training/LOG.md,
# session 25).
STALL_WIDTH = 0.02
ESCAPE_WIDTH = 0.15
# Below this level (0-255 scale) fine texture and 8-bit rounding read as noise (measured up to 3.2 on clean
# benchmark photos), so step 0 keeps the Predictor's noise level; clean results stay exactly as they were.
NOISE_TRUST_LEVEL = 4.0
Render = Literal["all", "last", "none"]


@dataclass
class Step:
    """One step of the correction loop; `sr` is None for steps that were not rendered."""

    index: int
    code: np.ndarray  # (CODE_LENGTH,) kernel code with the noise entry last
    kernel: np.ndarray  # (21, 21) kernel drawn back from the code
    kernel_width: float  # its width: how far it blurs (kernel_code.estimate_width)
    noise_sigma: float  # noise level on the 0-255 scale
    sr: np.ndarray | None  # (H*s, W*s, 3) uint8


def _check_lr(pixels: np.ndarray) -> None:
    if not (isinstance(pixels, np.ndarray) and pixels.ndim == 3 and pixels.shape[2] == 3
            and pixels.dtype == np.uint8):
        raise ValueError("the LR image must be an (H, W, 3) uint8 RGB array")
    if min(pixels.shape[:2]) < MIN_LR_SIZE:
        raise ValueError(f"the LR image is {pixels.shape[1]}x{pixels.shape[0]} px; "
                         f"at least {MIN_LR_SIZE}x{MIN_LR_SIZE} px are needed")


def activation_bytes_per_pixel(config: SFTMDConfig) -> float:
    """Peak SFTMD inference memory per LR pixel, a safe over-estimate (measured ~10 KB at nf 64, x4)."""
    return 4.0 * config.nf * (12 + 2.5 * config.scale ** 2)


def memory_budget() -> float:
    """Bytes SFTMD may use at once: a quarter of the free memory, at most TILE_MEMORY_BYTES."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: assume 4 GiB free
        free = 4 * 2 ** 30
    return min(TILE_MEMORY_BYTES, free / 4)


def quota_cpus(cpu_max: str) -> float | None:
    """CPUs a cgroup v2 `cpu.max` line allows ("200000 100000" -> 2.0); None when it says "max"."""
    quota, period = (cpu_max.split() + ["100000"])[:2]
    return None if quota == "max" else int(quota) / int(period)


def available_cpus() -> int:
    """CPUs this process may really use: its affinity, capped by a container's CPU quota.

    A container (e.g. a 2-vCPU Space) may see all of the host's cores; one torch thread per host core
    then fights over the 2 it is given, which is many times slower.
    """
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota = quota_cpus(Path("/sys/fs/cgroup/cpu.max").read_text())
    except (OSError, ValueError):
        quota = None
    return max(1, min(count, math.ceil(quota))) if quota else max(1, count)


def use_available_cpus() -> int:
    """Give torch one thread per usable CPU (or IKC_THREADS when set); returns the count."""
    setting = os.environ.get("IKC_THREADS", "").strip()
    if setting and not (setting.isdigit() and int(setting) >= 1):
        raise ValueError(f"IKC_THREADS must be a whole number of threads, 1 or more; got {setting!r}")
    torch.set_num_threads(int(setting) if setting else available_cpus())
    return torch.get_num_threads()


def textured_windows(lr: torch.Tensor, size: int, count: int, quantile: float = 1.0) -> list[tuple[int, int]]:
    """Top-left corners of up to `count` non-overlapping size x size windows whose gradient energy is nearest the
    `quantile` of the windows' energies; 1.0 takes the most textured ones, best first (edges reveal the blur;
    several windows see more of the image than one)."""
    height, width = lr.shape[-2:]
    if height <= size and width <= size:
        return [(0, 0)]
    grey = lr.mean(1, keepdim=True)
    energy = (grey[..., 1:, :-1] - grey[..., :-1, :-1]).abs() + (grey[..., :-1, 1:] - grey[..., :-1, :-1]).abs()
    window = (min(size, height - 1), min(size, width - 1))
    stride = max(1, size // 8)
    scores = F.avg_pool2d(energy, window, stride=stride)[0, 0].clone()
    reach = [math.ceil(side / stride) for side in window]  # score cells whose windows overlap a chosen one
    corners: list[tuple[int, int]] = []
    while len(corners) < count and bool(torch.isfinite(scores).any()):
        free = torch.isfinite(scores)
        closeness = torch.where(free, -(scores - scores[free].quantile(quantile)).abs(), -math.inf)
        row, col = divmod(int(closeness.flatten().argmax()), scores.shape[-1])
        corners.append((row * stride, col * stride))
        scores[max(0, row - reach[0] + 1):row + reach[0], max(0, col - reach[1] + 1):col + reach[1]] = -math.inf
    return corners


class IKC:
    """SFTMD with its Predictor and Corrector for one scale, plus the kernel PCA they share."""

    def __init__(self, sftmd: SFTMD, pca: KernelPCA, predictor: Predictor | None = None,
                 corrector: Corrector | None = None, metadata: dict | None = None,
                 estimation_crop: int | None = ESTIMATION_CROP, estimation_crops: int = ESTIMATION_CROPS,
                 window_quantile: float = 1.0, tile_pixels: int | None = None, tile_overlap: int = 16,
                 noise_from_image: bool = True,
                 halve_reversals: bool | None = None, gaussian_codes: bool | None = None,
                 window_groups: int | None = None, window_pool: int | None = None,
                 jpeg_sftmd: SFTMD | None = None,
                 jpeg_estimators: tuple[Predictor, Corrector] | None = None):
        if estimation_crop is not None and estimation_crop < MIN_LR_SIZE or estimation_crops < 1:
            raise ValueError(f"estimation_crop must be None or at least {MIN_LR_SIZE} px and estimation_crops at "
                             f"least 1; got {estimation_crop!r} and {estimation_crops!r}")
        if not 0.0 <= window_quantile <= 1.0:
            raise ValueError(f"window_quantile must be from 0 to 1; got {window_quantile!r}")
        if window_groups is not None and not (isinstance(window_groups, int) and window_groups >= 1):
            raise ValueError(f"window_groups must be None or a whole number, 1 or more; got {window_groups!r}")
        if window_pool is not None and not (isinstance(window_pool, int) and window_pool >= 0):
            raise ValueError(f"window_pool must be None or a whole number, 0 or more; got {window_pool!r}")
        self.sftmd = sftmd.eval().to(memory_format=CL)
        self.predictor = predictor.eval() if predictor is not None else None
        self.corrector = corrector.eval().to(memory_format=CL) if corrector is not None else None
        self.pca = pca
        self.scale = sftmd.config.scale
        self.metadata = metadata or {}
        self.estimation_crop = estimation_crop
        self.estimation_crops = estimation_crops
        self.window_quantile = window_quantile  # the Corrector's windows (textured_windows; 1.0: the Predictor's)
        self.tile_pixels = tile_pixels or int(memory_budget() / activation_bytes_per_pixel(sftmd.config))
        self.tile_overlap = tile_overlap
        self.noise_from_image = noise_from_image
        self.halve_reversals = halve_reversals  # None: as the Corrector's checkpoint says (halves_reversals)
        self.gaussian_codes = gaussian_codes  # None: as the Corrector's checkpoint says (keeps_gaussian_codes)
        self.window_groups = window_groups  # None: as the Corrector's checkpoint says (corrector_window_groups)
        self.window_pool = window_pool  # None: as the Corrector's checkpoint says (corrector_window_pool)
        self.jpeg_sftmd = jpeg_sftmd.eval().to(memory_format=CL) if jpeg_sftmd is not None else None
        self.jpeg_estimators = None if jpeg_estimators is None else (
            jpeg_estimators[0].eval(), jpeg_estimators[1].eval().to(memory_format=CL))
        self.estimation_sftmd = self.sftmd  # the SFTMD whose SR crops the Corrector reads (it was trained on them)
        self.jpeg_quality: int | None = None  # the input's, told to an SFTMD with quality_input (set by for_input)
        self.device = next(sftmd.parameters()).device  # the networks' device (a GPU during training's validation)
        self._spread_weights = torch.from_numpy(spread_projection(pca)[1]).float().to(self.device)

    @property
    def kernel_range(self) -> tuple[float, float]:
        """Kernel widths the networks were trained on; outside it results are extrapolation."""
        low, high = self.metadata.get("kernel_range", (0.2, 4.0))
        return float(low), float(high)

    @property
    def noise_range(self) -> tuple[float, float]:
        """Noise levels (0-255 scale) the networks were trained on."""
        low, high = self.metadata.get("noise_range", (0.0, 25.0))
        return float(low), float(high)

    @property
    def jpeg_range(self) -> tuple[int, int] | None:
        """JPEG qualities the JPEG SFTMD was trained on, or None when there is none."""
        return self._trained_range("jpeg") if self.jpeg_sftmd is not None else None

    @property
    def jpeg_estimators_range(self) -> tuple[int, int] | None:
        """JPEG qualities the JPEG Predictor and Corrector were trained on, or None when there are none."""
        return self._trained_range("jpeg_estimators") if self.jpeg_estimators is not None else None

    def _trained_range(self, key: str) -> tuple[int, int]:
        low, high = self.metadata[key]["jpeg_range"]  # load() refuses a JPEG network without it
        return int(low), int(high)

    def for_input(self, jpeg_quality: int | None) -> IKC:
        """The pipeline for an LR image stored as JPEG at `jpeg_quality` (None: lossless): the JPEG SFTMD renders
        and the JPEG Predictor and Corrector estimate, each where one is loaded and the quality is at most its
        training range's top (above it the image is nearly lossless). The Corrector reads the SR crops of the
        SFTMD it was trained against: the lossless one, or the JPEG one for JPEG estimators trained on its
        crops. A JPEG SFTMD with quality_input is told the quality. Else this pipeline itself."""
        if jpeg_quality is None:
            return self
        variant = copy.copy(self)
        if self.jpeg_range is not None and jpeg_quality <= self.jpeg_range[1]:
            variant.sftmd, variant.jpeg_quality = self.jpeg_sftmd, jpeg_quality
        if self.jpeg_estimators_range is not None and jpeg_quality <= self.jpeg_estimators_range[1]:
            variant.predictor, variant.corrector = self.jpeg_estimators
            if self.jpeg_estimators_read_jpeg_sftmd:
                variant.estimation_sftmd = self.jpeg_sftmd
        return self if variant.sftmd is self.sftmd and variant.predictor is self.predictor else variant

    @property
    def jpeg_estimators_read_jpeg_sftmd(self) -> bool:
        """True when the JPEG Corrector was trained on the JPEG SFTMD's SR crops (else on the lossless one's)."""
        return bool(self.metadata.get("jpeg_estimators", {}).get("reads_jpeg_sftmd", False))

    @property
    def halves_reversals(self) -> bool:
        """Whether a Corrector update that turns back is applied at half size: as asked when the pipeline was made,
        else as the checkpoint of the Corrector in use says."""
        return bool(self._loop_setting(self.halve_reversals, "halve_reversals", False))

    @property
    def keeps_gaussian_codes(self) -> bool:
        """Whether every step's code is moved onto the nearest isotropic Gaussian (kernel_code.nearest_gaussian_code),
        the kernels SFTMD was trained on: as asked when the pipeline was made, else as the Corrector's checkpoint says."""
        return bool(self._loop_setting(self.gaussian_codes, "gaussian_codes", False))

    @property
    def corrector_window_groups(self) -> int:
        """How many groups of estimation_crops windows the Corrector reads in turn, one group a step: as asked when
        the pipeline was made, else as the Corrector's checkpoint says (1: the same windows at every step)."""
        return int(self._loop_setting(self.window_groups, "window_groups", 1))

    @property
    def corrector_window_pool(self) -> int:
        """How many textured windows the Predictor reads, the Corrector then reading the estimation_crops of them with
        the most typical guesses: as asked when the pipeline was made, else as the Corrector's checkpoint says (0: no
        pool, both read the estimation_crops most textured ones)."""
        return int(self._loop_setting(self.window_pool, "window_pool", 0))

    def _loop_setting(self, asked: bool | int | None, key: str, default: bool | int) -> bool | int:
        """A loop setting: `asked` unless None, else `key` in the checkpoint of the Corrector in use (or default)."""
        if asked is not None:
            return asked
        estimators = "jpeg_estimators" if self.uses_jpeg_estimators else "estimators"
        return self.metadata.get(estimators, {}).get(key, default)

    @property
    def uses_jpeg_sftmd(self) -> bool:
        """True for the variant `for_input` gives a JPEG: its SFTMD was trained on JPEG inputs."""
        return self.jpeg_sftmd is not None and self.sftmd is self.jpeg_sftmd

    @property
    def told_jpeg_quality(self) -> int | None:
        """The JPEG quality the rendering SFTMD is told (one with quality_input), else None."""
        return self.jpeg_quality if self.sftmd.config.quality_input else None

    @property
    def uses_jpeg_estimators(self) -> bool:
        """True for the variant `for_input` gives a JPEG: its Predictor and Corrector were trained on JPEG inputs."""
        return self.jpeg_estimators is not None and self.predictor is self.jpeg_estimators[0]

    @property
    def blind(self) -> bool:
        """True when a Predictor and Corrector are loaded (blind SR is possible)."""
        return self.predictor is not None and self.corrector is not None

    def code_for(self, kernel: np.ndarray, noise_sigma: float = 0.0) -> np.ndarray:
        """The code of a user-chosen kernel (K, K) and noise level (0-255 scale)."""
        return encode(self.pca, np.asarray(kernel, np.float32), noise_sigma)

    def describe(self, index: int, code: np.ndarray, sr: np.ndarray | None) -> Step:
        """A Step for `code`: kernel drawn back, its width and noise level."""
        kernel = decode_kernel(self.pca, code)
        return Step(index, code.copy(), kernel, float(estimate_width(kernel)), float(decode_noise(code)), sr)

    @torch.inference_mode()
    def render(self, lr_pixels: np.ndarray, code: np.ndarray) -> np.ndarray:
        """SFTMD on the whole image for one code, in overlapping tiles when the image is large."""
        _check_lr(lr_pixels)
        code_tensor = torch.from_numpy(code)[None].to(self.device)
        return to_pixels(self._sftmd(to_tensor(lr_pixels).to(self.device), code_tensor))

    def super_resolve(self, lr_pixels: np.ndarray, kernel: np.ndarray | None = None,
                      noise_sigma: float = 0.0, code: np.ndarray | None = None) -> np.ndarray:
        """Non-blind SR: the given kernel (or code) is trusted as it is."""
        if (kernel is None) == (code is None):
            raise ValueError("give exactly one of kernel or code")
        return self.render(lr_pixels, self.code_for(kernel, noise_sigma) if code is None else code)

    @torch.inference_mode()
    def steps(self, lr_pixels: np.ndarray, iterations: int = 7, init_code: np.ndarray | None = None,
              render: Render = "all", on_step: Callable[[Step], None] | None = None) -> Iterator[Step]:
        """Run the correction loop, yielding steps 0..iterations as each finishes.

        Step 0 uses `init_code` when given, else the Predictor's guess. render="all" gives every
        step's full SR image, "last" only the final one's, "none" none (render them later with
        `render`, e.g. for the steps a user looks at).
        """
        _check_lr(lr_pixels)
        if not (isinstance(iterations, (int, np.integer)) and 0 <= iterations <= MAX_ITERATIONS):
            raise ValueError(f"iterations must be a whole number from 0 to {MAX_ITERATIONS}, got {iterations!r}")
        if init_code is None and not self.blind:
            raise CheckpointError(f"no Predictor/Corrector checkpoint for x{self.scale}: blind SR is not available; "
                                  f"give a kernel, or train them with `python -m training.train_ikc`")
        if iterations > 0 and self.corrector is None:
            raise CheckpointError(f"no Corrector checkpoint for x{self.scale}: only 0 iterations are possible")
        lr = to_tensor(lr_pixels).to(self.device).contiguous(memory_format=CL)
        groups = self.corrector_window_groups
        pooled = self._pooled_windows(lr)
        if pooled is not None:  # the Corrector reads the pool's typical windows; step 0 averages all its guesses
            regions, guesses = pooled
        else:
            regions = self._estimation_regions(lr, self.window_quantile, groups)
        whole = regions.shape[0] == 1 and regions.shape[-2:] == lr.shape[-2:]
        if init_code is not None:
            code = torch.from_numpy(np.asarray(init_code, np.float32))[None].to(self.device)
        elif pooled is not None:
            code = self._predict(guesses, lr_pixels)
        else:  # the Predictor reads the most textured windows: the Corrector's own unless it asked for others
            textured = regions if self.window_quantile == 1.0 else self._estimation_regions(lr, 1.0, groups)
            code = self._predict(self.predictor(textured), lr_pixels)
        window_sets = [regions[g::groups] for g in range(min(groups, len(regions)))]  # ranks g apart in each
        crop_sr, windows, last_change = None, window_sets[0], 0.0
        readings: dict[int, torch.Tensor] = {}  # with groups: each group's latest corrected code
        reuse = whole and self.estimation_sftmd is self.sftmd  # the Corrector's SR image is the result itself
        for index in range(iterations + 1):
            if index > 0:
                update = self.corrector(crop_sr, code.expand(len(windows), -1), windows).mean(0, keepdim=True)
                if len(window_sets) > 1:  # move to the mean of every group's latest reading
                    readings[(index - 1) % len(window_sets)] = code + update
                    update = torch.cat(list(readings.values())).mean(0, keepdim=True) - code
                code, last_change = self._corrected(code, update, last_change)
            if index < iterations or reuse:
                windows = window_sets[index % len(window_sets)]  # the windows the next update reads
                crop_sr = self._sftmd(windows, code.expand(len(windows), -1), self.estimation_sftmd)
            wanted = render == "all" or (render == "last" and index == iterations)
            sr = None
            if wanted:
                sr = to_pixels(crop_sr) if reuse else to_pixels(self._sftmd(lr, code))
            step = self.describe(index, code[0].cpu().numpy(), sr)
            if on_step is not None:
                on_step(step)
            yield step

    def _corrected(self, code: torch.Tensor, update: torch.Tensor, last_change: float) -> tuple[torch.Tensor, float]:
        """The code after one Corrector update, and which way it moved the kernel (> 0: wider). With halving, an
        update that turns back is applied at half size. With Gaussian codes the turn is read on the width after the
        move onto the Gaussians: there the nearest Gaussian can flip to and fro while the raw update's spread keeps
        its sign, a 2-cycle the spread never shows (training/LOG.md, session 18). A stall (STALL_WIDTH) moves by
        the update's mean radius: near 0.7 px the L2 match follows a sharp peak and held a kernel there for good."""
        if not self.keeps_gaussian_codes:
            change = float(update[0, :PCA_COMPONENTS] @ self._spread_weights)
            halved = self.halves_reversals and change * last_change < 0
            return code + (update / 2 if halved else update), change
        width = self._width(code)
        moved = nearest_gaussian_code_torch(self.pca, code + update)
        change = self._width(moved) - width
        if self.halves_reversals and change * last_change < 0:
            update = update / 2
            moved = nearest_gaussian_code_torch(self.pca, code + update)
            change = self._width(moved) - width
        if abs(change) < STALL_WIDTH:
            spread = mean_radius_gaussian_code_torch(self.pca, code + update)
            spread_change = self._width(spread) - width
            if abs(spread_change) > ESCAPE_WIDTH:
                moved, change = spread, spread_change
        return moved, change if change != 0 else last_change  # a step that stays keeps the last direction

    def _width(self, code: torch.Tensor) -> float:
        return float(nearest_gaussian_width(decode_kernel(self.pca, code[0].cpu().numpy())))

    def run(self, lr_pixels: np.ndarray, iterations: int = 7, **options) -> list[Step]:
        """All steps of `steps` as a list."""
        return list(self.steps(lr_pixels, iterations, **options))

    def _predict(self, guesses: torch.Tensor, lr_pixels: np.ndarray) -> torch.Tensor:
        """Step 0's code: the Predictor's guesses (one per window) averaged, with the noise level read from the
        image's flat regions (ikc.noise) when noise_from_image is set and that reading shows clear noise."""
        code = guesses.mean(0, keepdim=True)
        if self.noise_from_image:
            noise = estimate_noise(lr_pixels)
            if noise >= NOISE_TRUST_LEVEL:
                code[0, PCA_COMPONENTS] = noise / NOISE_CODE_SCALE
        return code

    def _pooled_windows(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """With a window pool (corrector_window_pool above estimation_crops) and a Predictor: the estimation_crops
        windows of the pool's most textured ones whose guessed width lies nearest the guesses' median, and the
        Predictor's guess for every pool window. None without a pool, or for an image no larger than one window."""
        pool = self.corrector_window_pool
        if pool <= self.estimation_crops or self.predictor is None:
            return None
        windows = self._estimation_regions(lr, 1.0, count=pool)
        if windows.shape[-2:] == lr.shape[-2:]:  # the whole image: nothing to pick from
            return None
        if self.corrector_window_groups > 1 or self.window_quantile != 1.0:
            raise ValueError("a window pool picks the Corrector's windows itself: it takes no window groups or "
                             "quantile")
        guesses = self.predictor(windows)
        widths = np.array([estimate_width(decode_kernel(self.pca, guess.cpu().numpy())) for guess in guesses])
        typical = np.argsort(np.abs(widths - np.median(widths)), kind="stable")[:self.estimation_crops]
        return windows[np.sort(typical).tolist()], guesses

    def _estimation_regions(self, lr: torch.Tensor, quantile: float = 1.0, groups: int = 1,
                            count: int | None = None) -> torch.Tensor:
        """The `groups` x estimation_crops windows (or `count` of them) at this energy quantile (textured_windows)
        as one batch, best first, or the whole image: the Predictor looks at the most textured ones (1.0), the
        Corrector at those of `window_quantile`."""
        size = self.estimation_crop
        if size is None or max(lr.shape[-2:]) <= size:
            return lr
        corners = textured_windows(lr, size, count or self.estimation_crops * groups, quantile)
        return torch.cat([lr[..., top:top + size, left:left + size] for top, left in corners])

    def _sftmd(self, lr: torch.Tensor, code: torch.Tensor, network: SFTMD | None = None) -> torch.Tensor:
        """SFTMD (`network`, else the rendering one) on a batch of images, or over overlapping tiles when it needs
        more than the memory budget.

        Each tile keeps only its core; the overlap covers the network's effective receptive field, so
        tiled and untiled outputs agree to 1/255 (tests check it).
        """
        network = network if network is not None else self.sftmd
        batch, _, height, width = lr.shape
        compression = torch.full((batch,), compression_level(self.jpeg_quality), device=lr.device)
        if batch * height * width <= self.tile_pixels:
            return network(lr.contiguous(memory_format=CL), code, compression)
        side = max(16, int(math.sqrt(self.tile_pixels / batch)) - 2 * self.tile_overlap)
        s, pad = self.scale, self.tile_overlap
        out = torch.empty(batch, 3, height * s, width * s, device=lr.device)
        for top in range(0, height, side):
            for left in range(0, width, side):
                bottom, right = min(top + side, height), min(left + side, width)
                y0, x0 = max(top - pad, 0), max(left - pad, 0)
                tile = lr[..., y0:min(bottom + pad, height), x0:min(right + pad, width)]
                sr = network(tile.contiguous(memory_format=CL), code, compression)
                out[..., top * s:bottom * s, left * s:right * s] = \
                    sr[..., (top - y0) * s:(bottom - y0) * s, (left - x0) * s:(right - x0) * s]
        return out


def _configs(metadata: dict, path: Path, key: str, config_type):
    try:
        return config_type(**metadata[key])
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: metadata has no usable '{key}' architecture ({error})") from None


def load_sftmd(path: Path) -> tuple[SFTMD, KernelPCA, dict]:
    """The SFTMD of one checkpoint file, its kernel PCA and metadata; CheckpointError when unusable."""
    tensors, metadata = read_file(path)
    sftmd = load_module(SFTMD(_configs(metadata, path, "sftmd", SFTMDConfig)), tensors, "sftmd", path)
    return sftmd, read_pca(tensors), metadata


def load_estimators(path: Path, pca: KernelPCA, sftmd_file: Path) -> tuple[Predictor, Corrector, dict]:
    """The Predictor and Corrector of one checkpoint file and its metadata; CheckpointError when they do not fit
    the SFTMD's kernel PCA."""
    tensors, metadata = read_file(path)
    if not np.array_equal(read_pca(tensors).matrix, pca.matrix):
        raise CheckpointError(f"{path} was trained with another kernel PCA than {sftmd_file}: export both from the "
                              f"same training run")
    config = _configs(metadata, path, "estimator", EstimatorConfig)
    return (load_module(Predictor(config), tensors, "predictor", path),
            load_module(Corrector(config), tensors, "corrector", path), metadata)


def _require_jpeg_range(metadata: dict, path: Path, export_option: str) -> None:
    """CheckpointError unless a network for JPEG inputs says which qualities it was trained on."""
    if "jpeg_range" not in metadata:
        raise CheckpointError(f"{path} does not say which JPEG qualities it was trained on: export it with "
                              f"`python -m training.export {export_option}`")


def available_scales(folder: Path = CHECKPOINT_DIR) -> list[int]:
    """Scales for which an SFTMD checkpoint exists in `folder`."""
    return [s for s in SCALES if sftmd_path(s, folder).is_file()]


def load(scale: int = 4, folder: Path | str = CHECKPOINT_DIR, require_blind: bool = True, **options) -> IKC:
    """Load the pipeline for one scale from `folder`; CheckpointError says what is missing and what to do."""
    folder = Path(folder)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    path = sftmd_path(scale, folder)
    if not path.is_file():
        have = available_scales(folder)
        raise CheckpointError(f"no checkpoint for x{scale} in {folder} (available: "
                              f"{', '.join(f'x{s}' for s in have) or 'none'}); train one with "
                              f"`python -m training.train_sftmd` and export it with `python -m training.export`")
    sftmd, pca, metadata = load_sftmd(path)
    if sftmd.config.scale != scale:
        raise CheckpointError(f"{path} holds an x{sftmd.config.scale} network, not x{scale}")
    predictor = corrector = jpeg_estimators = None
    estimators = estimators_path(scale, folder)
    if estimators.is_file():
        predictor, corrector, est_meta = load_estimators(estimators, pca, path)
        metadata = {**metadata, "estimators": est_meta}
        jpeg_path = jpeg_estimators_path(scale, folder)
        if jpeg_path.is_file():
            jpeg_predictor, jpeg_corrector, jpeg_meta = load_estimators(jpeg_path, pca, path)
            _require_jpeg_range(jpeg_meta, jpeg_path, "--jpeg-ikc-run")
            jpeg_estimators = (jpeg_predictor, jpeg_corrector)
            metadata = {**metadata, "jpeg_estimators": jpeg_meta}
    elif require_blind:
        raise CheckpointError(f"no Predictor/Corrector checkpoint {estimators.name} for x{scale}: blind SR needs "
                              f"it; train it with `python -m training.train_ikc`, or load with require_blind=False")
    jpeg_sftmd = None
    jpeg_path = jpeg_sftmd_path(scale, folder)
    if jpeg_path.is_file():
        jpeg_sftmd, jpeg_pca, jpeg_meta = load_sftmd(jpeg_path)
        _require_jpeg_range(jpeg_meta, jpeg_path, "--jpeg-sftmd-run")
        if jpeg_sftmd.config.scale != scale or not np.array_equal(jpeg_pca.matrix, pca.matrix):
            raise CheckpointError(f"{jpeg_path} does not fit {path} (another scale or kernel PCA): export it from a "
                                  f"fine-tune of that SFTMD with `python -m training.export --jpeg-sftmd-run`")
        metadata = {**metadata, "jpeg": jpeg_meta}
    if metadata.get("jpeg_estimators", {}).get("reads_jpeg_sftmd") and jpeg_sftmd is None:
        raise CheckpointError(f"{jpeg_estimators_path(scale, folder)} was trained on the JPEG SFTMD's SR images, "
                              f"but {jpeg_path.name} is missing: export both with `python -m training.export`")
    return IKC(sftmd, pca, predictor, corrector, metadata, jpeg_sftmd=jpeg_sftmd, jpeg_estimators=jpeg_estimators,
               **options)
