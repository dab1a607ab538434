"""Train the Predictor and Corrector against a frozen SFTMD (MSE on the kernel code), resumable.

    python -m training.train_ikc --config training/configs/ikc_x4.yaml --sftmd-run runs/sftmd_x4 --run-dir runs/ikc_x4
    python -m training.train_ikc --config training/configs/corrector_x4.yaml \
        --sftmd-run checkpoints/sftmd_x4.safetensors --from-checkpoint checkpoints/ikc_x4.safetensors --run-dir runs/c4

Each step takes `correction_steps` SFTMD passes (the official recipe: 7), plus `predictor_steps - 1` cheap
extra Predictor updates on fresh batches. The Corrector starts from the Predictor's own (detached) guesses
(half the batch) and from wrong codes for the rest: Gaussians of a width drawn over the whole training range
(a share `uniform_start_fraction`, so starts far from the truth are seen) or of the true width plus
N(0, perturbed_width_std); it then follows its own updates, so it learns from the trajectories it makes.
With `replay_fraction` > 0 that share of each batch carries on trajectories of earlier batches (their LR
patch and the code they reached), so the Corrector also learns from the states its later steps visit (the
app runs 7 steps; a batch unrolls `correction_steps`) at no extra cost per step.
With `gaussian_codes` every Corrector update is moved onto the nearest isotropic Gaussian before the next step,
as the loop does for a Corrector exported with that flag (ikc.IKC.keeps_gaussian_codes).
With `train_predictor: false` only the Corrector learns; with `amp` the frozen SFTMD's passes run under bf16
autocast (the Predictor and Corrector stay fp32: their code updates are small). `--sftmd-run` is a run folder or a
shipped checkpoint. Validation runs the correction loop from the Predictor's guess and from both ends of the range
on held-out photos (evaluation.convergence); the state that converges best is kept as best.safetensors.
With `ema_decay` > 0 an exponential moving average of the Predictor and Corrector is kept and is what validation
runs and best.safetensors holds: batch-8 steps move the weights enough that validation swings 0.43-0.79 px
between states 50 steps apart (measured at x4), and a best state picked from such swings regresses at once.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from evaluation.convergence import FAR_STARTS, PREDICTOR, convergence, make_cases
from ikc.archs import SFTMD, Corrector, Predictor
from ikc.degradation import gaussian_kernel
from ikc.imageio import load_image
from ikc.kernel_code import PCA_COMPONENTS, KernelPCA, encode, nearest_gaussian_code_torch, spread_projection
from ikc.pipeline import IKC, load_sftmd

from .config import CL, TrainConfig, add_run_arguments, build_sftmd, load_config
from .dataset import Batch, PatchSampler, list_images, split_holdout
from .loop import RunLog, autocast, prepare_device, rate_schedule, setup_distributed, training_loop
from .state import load_state, read_state, resumed_average, save_state, sftmd_weights, start_from_checkpoint

VALIDATION_CROP = 192  # HR px of each held-out photo's centre
VALIDATION_STEPS = 7  # corrections in validation: what the app and the CLI run by default
PERTURBATION = 0.5  # std of the random offsets added to true codes (codes have unit scale)
SPREAD_UNIT = 4.0  # kernel spread (sigma^2) is compared in units of 4 px^2 in the loss


def code_loss(pca: KernelPCA, weight: float, noise_weight: float, device: str | torch.device = "cpu",
              overestimate_weight: float = 1.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """MSE on the code, plus `weight` x MSE on the kernel's spread (sigma^2, linear in the code; a too-wide
    spread charged `overestimate_weight` times), plus `noise_weight` x MSE on the noise entry.

    Plain code MSE is dominated by the PCA entries of very narrow kernels, which an x4 LR image cannot tell
    apart; the spread term points the gradient at the width, which it can. The noise entry is one of 11 in
    the MSE, yet a wrong noise level makes SFTMD smooth a clean image (measured: IKC drifted to noise 5).
    Too wide a kernel makes SFTMD ring and costs far more PSNR than too narrow a one (measured at x4).
    """
    offset, weights = spread_projection(pca)
    weights = torch.from_numpy(weights).float().to(device) / SPREAD_UNIT

    def loss(predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        spread_error = (predicted[:, :PCA_COMPONENTS] - true[:, :PCA_COMPONENTS]) @ weights
        noise_error = predicted[:, PCA_COMPONENTS] - true[:, PCA_COMPONENTS]
        spread_cost = spread_error ** 2 * torch.where(spread_error > 0, overestimate_weight, 1.0)
        return (F.mse_loss(predicted, true) + weight * spread_cost.mean()
                + noise_weight * (noise_error ** 2).mean())

    return loss


def perturbed_codes(codes: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, config: TrainConfig,
                    pca: KernelPCA) -> torch.Tensor:
    """Wrong codes for the Corrector to correct: Gaussians of width sigma + N(0, perturbed_width_std), clipped to
    the training range, or (a share uniform_start_fraction of them) of a width drawn uniformly over the range,
    whatever the truth; or (with both 0) the true codes plus N(0, PERTURBATION) on every entry.

    Measured: with the second kind, whose off-curve offsets the code alone reveals, the Correctors learned to
    ignore their SR image (same update whatever image they saw).
    """
    if config.perturbed_width_std <= 0 and config.uniform_start_fraction <= 0:
        return codes + PERTURBATION * torch.randn_like(codes)
    widths = (sigma + config.perturbed_width_std * torch.randn_like(sigma)).clamp(config.sigma_min, config.sigma_max)
    uniform = torch.rand_like(sigma) < config.uniform_start_fraction
    widths = torch.where(uniform, config.sigma_min + (config.sigma_max - config.sigma_min) * torch.rand_like(sigma),
                         widths)
    kernels = np.stack([gaussian_kernel(float(width)) for width in widths])
    return torch.from_numpy(encode(pca, kernels, noise.numpy())).to(codes.device)


def draw_batch(sampler: PatchSampler, config: TrainConfig, predictor_starts: int) -> Batch:
    """A training batch whose first `predictor_starts` patches (those the Corrector corrects from the Predictor's
    guess) are drawn with `predictor_start_texture_pick` when set, the rest with `texture_pick`.

    The Predictor's guess on a smooth photo is often right, and a Corrector shown only textured patches widens it
    (measured at x4 on Set5's bird and baby)."""
    pick = config.predictor_start_texture_pick or config.texture_pick
    if predictor_starts == 0 or pick == config.texture_pick:
        return sampler.sample(config.batch_size, config.texture_pick)
    if predictor_starts == config.batch_size:
        return sampler.sample(config.batch_size, pick)
    return sampler.sample(predictor_starts, pick).followed_by(
        sampler.sample(config.batch_size - predictor_starts, config.texture_pick))


@dataclass
class Trajectories:
    """Correction trajectories at the end of a batch, to be carried on in later ones."""
    lr: torch.Tensor  # (N, 3, h, w) LR patches
    target: torch.Tensor  # (N, CODE_LENGTH) true codes
    code: torch.Tensor  # (N, CODE_LENGTH) the code each trajectory has reached
    rounds: torch.Tensor  # (N,) how many batches each has run

    def take(self, count: int, max_rounds: int) -> "Trajectories":
        """Up to `count` of them, at random among those that have run fewer than `max_rounds` batches."""
        alive = torch.nonzero(self.rounds < max_rounds).flatten()
        chosen = alive[torch.randperm(len(alive))[:count]]
        return Trajectories(self.lr[chosen], self.target[chosen], self.code[chosen], self.rounds[chosen])

    def replacing_tail(self, lr: torch.Tensor, target: torch.Tensor, code: torch.Tensor) -> "Trajectories":
        """A fresh batch (all at round 0) whose last entries are these carried-on trajectories."""
        keep = len(code) - len(self.code)
        fresh = torch.zeros(keep, dtype=self.rounds.dtype)
        return Trajectories(torch.cat([lr[:keep], self.lr]), torch.cat([target[:keep], self.target]),
                            torch.cat([code[:keep], self.code]), torch.cat([fresh, self.rounds]))


def frozen_sftmd(source: Path) -> tuple[SFTMD, KernelPCA, int, bool]:
    """The SFTMD to train against, its PCA, step and whether it was trained on JPEG inputs: from a run folder's
    state or a shipped checkpoint file. One told the JPEG quality (quality_input) is refused: the P/C batches do
    not carry the quality to it."""
    if source.is_file():
        sftmd, pca, metadata = load_sftmd(source)
        step, jpeg = metadata["training"]["steps"], "jpeg_range" in metadata
    else:
        state = source / "state.safetensors"
        meta = read_state(state)[1]
        config = TrainConfig.from_dict(meta["config"])
        sftmd = build_sftmd(config)  # its own architecture
        pca, meta = load_state(state, {sftmd_weights(meta): sftmd}, None)  # the moving average if it validated better
        step, jpeg = meta["step"], config.jpeg_fraction > 0
    if sftmd.config.quality_input:
        raise SystemExit(f"{source} is an SFTMD told the JPEG quality (quality_input); P/C training does not pass the "
                         f"quality yet: train the Predictor and Corrector against the lossless SFTMD")
    return sftmd.to(memory_format=CL), pca, step, jpeg


def validation_photos(config: TrainConfig, held_out: list[Path]) -> list[Path]:
    """The photos a P/C run validates on: the held-out training photos, plus the first `validation_limit` of
    `validation_photos` by name when that folder is set (the development set: more textured photos)."""
    if config.validation_photos is None:
        return held_out
    folder = Path(config.validation_photos)
    if not folder.is_dir():
        raise SystemExit(f"validation_photos: no folder {folder}")
    return held_out + list_images(folder)[:config.validation_limit]


def validate(model: IKC, cases, steps: int) -> tuple[str, float]:
    """Run the correction loop on held-out cases from the Predictor's guess and from both far starts; returns
    a log line (mean width error at step 0 -> last per start) and the mean last-step error over the starts."""
    predictor, corrector = model.predictor, model.corrector
    results = convergence(model, cases, [PREDICTOR, *map(str, FAR_STARTS[model.scale])], steps, psnr=False)
    predictor.train(), corrector.train()
    text = " | ".join(f"{start} {r['error'][0]:.3f}>{r['error'][1]:.3f}>{r['error'][-1]:.3f}"
                      for start, r in results.items())
    return f"val_width_error {text}", float(np.mean([r["error"][-1] for r in results.values()]))


def train(config: TrainConfig, sftmd_run: Path, data_dir: Path, run_dir: Path, minutes: float | None,
          max_steps: int | None, threads: int | None, from_checkpoint: Path | None = None, device: str = "cpu",
          anneal: bool = False) -> float:
    """Run (or resume) P/C training; returns the last validation width error (mean over starts, last step)."""
    rank, world = setup_distributed()
    prepare_device(device, threads)
    log = RunLog(run_dir, enabled=rank == 0)
    sftmd, pca, sftmd_step, sftmd_jpeg = frozen_sftmd(sftmd_run)
    sftmd.to(device).eval().requires_grad_(False)
    estimator = config.estimator()
    predictor, corrector = Predictor(estimator).to(device), Corrector(estimator).to(device, memory_format=CL)
    modules = {"predictor": predictor, "corrector": corrector}
    predictor.requires_grad_(config.train_predictor)
    trained = [*predictor.parameters(), *corrector.parameters()] if config.train_predictor else [
        *corrector.parameters()]
    optimizer = torch.optim.Adam(trained, lr=config.learning_rate)
    state_path = run_dir / "state.safetensors"
    step, elapsed_before = 0, 0.0
    if state_path.exists():
        own_pca, meta = load_state(state_path, modules, optimizer)
        step, elapsed_before = meta["step"], meta.get("train_seconds", 0.0)
        log.line(f"resumed from step {step}")
    elif from_checkpoint is not None:
        own_pca, step, elapsed_before = start_from_checkpoint(from_checkpoint, modules, config.scale, log)
    else:
        own_pca = pca
    if not np.array_equal(own_pca.matrix, pca.matrix):
        raise SystemExit(f"the Predictor/Corrector were trained with another kernel PCA than {sftmd_run}")
    averaged = nn.ModuleDict(modules)  # what the moving average follows
    ema = resumed_average(averaged, config.ema_decay, state_path)  # or from the weights above
    validated = modules if ema is None else dict(ema.module.items())
    train_paths, held_out = split_holdout(list_images(data_dir), config.holdout_images)
    sampler = PatchSampler(train_paths, pca, config.scale, config.lr_patch, config.degradations(),
                           seed=config.seed + 1000 * rank + step, device=device)
    cases = make_cases([(p.name, load_image(p)) for p in validation_photos(config, held_out)], config.scale,
                       config.validation_sigmas, VALIDATION_CROP, config.validation_qualities()) if rank == 0 else []
    model = IKC(sftmd, pca, validated["predictor"], validated["corrector"], gaussian_codes=config.gaussian_codes)
    p_net = DistributedDataParallel(predictor) if world > 1 else predictor
    c_net = DistributedDataParallel(corrector) if world > 1 else corrector
    log.line(f"training P/C against SFTMD step {sftmd_step} of {sftmd_run}, world {world}, "
             f"device {device}, anneal {anneal}, config {config.to_dict()}")

    last = {"error": float("nan"), "best": math.inf}
    carried: list[Trajectories] = []  # the last batch's trajectories, when replaying
    replayed = round(config.batch_size * config.replay_fraction)
    criterion = code_loss(pca, config.spread_weight, config.noise_weight, device, config.overestimate_weight)
    rate = rate_schedule(config, step, minutes if anneal else None)

    def predictor_step() -> None:
        batch = sampler.sample(config.batch_size)
        optimizer.zero_grad(set_to_none=True)
        criterion(p_net(batch.lr), batch.code).backward()
        optimizer.step()  # the Corrector has no gradients here, so Adam leaves it alone

    def train_step(at: int) -> dict[str, torch.Tensor]:
        for group in optimizer.param_groups:
            group["lr"] = rate(at)
        for _ in range(config.predictor_steps - 1 if config.train_predictor else 0):
            predictor_step()
        half = round(config.batch_size * config.predictor_start_fraction)
        batch = draw_batch(sampler, config, half)
        with torch.set_grad_enabled(config.train_predictor):
            guess = p_net(batch.lr)
        loss_p = criterion(guess, batch.code) if config.train_predictor else torch.zeros((), device=device)
        perturbed = perturbed_codes(batch.code[half:], batch.sigma[half:], batch.noise[half:], config, pca)
        code = torch.cat([guess[:half].detach(), perturbed])
        old = carried.pop().take(replayed, config.replay_rounds) if carried else None
        now = (old.replacing_tail(batch.lr, batch.code, code) if old is not None
               else Trajectories(batch.lr, batch.code, code, torch.zeros(len(code), dtype=torch.long)))
        code, loss_c = now.code, torch.zeros((), device=device)
        lr_cl = now.lr.contiguous(memory_format=CL)
        for _ in range(config.correction_steps):
            with torch.no_grad(), autocast(device, config.amp):
                sr = sftmd(lr_cl, code).float().contiguous(memory_format=CL)
            corrected = code + c_net(sr, code, lr_cl)
            loss_c = loss_c + criterion(corrected, now.target) / config.correction_steps
            code = corrected.detach()
            if config.gaussian_codes:
                code = nearest_gaussian_code_torch(pca, code)
        if replayed:
            carried.append(Trajectories(now.lr, now.target, code, now.rounds + 1))
        optimizer.zero_grad(set_to_none=True)
        (loss_p + loss_c).backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(averaged)
        return {"loss": (loss_p + loss_c).detach(), "p": loss_p.detach(), "c": loss_c.detach()}

    def meta(at: int, seconds: float) -> dict:
        return {"step": at, "config": config.to_dict(), "sftmd_run": str(sftmd_run), "sftmd_step": sftmd_step,
                "sftmd_jpeg": sftmd_jpeg,
                "val_width_error": last["error"], "train_seconds": elapsed_before + seconds}

    def run_validation(at: int, seconds: float) -> tuple[str, float]:
        text, last["error"] = validate(model, cases, VALIDATION_STEPS)
        if last["error"] < last["best"]:  # keep the state that converges best
            last["best"] = last["error"]
            save_state(run_dir / "best.safetensors", validated, optimizer, pca, meta(at, seconds))
        return text, last["error"]

    def checkpoint(at: int, seconds: float) -> None:
        if rank == 0:
            save_state(state_path, modules if ema is None else {**modules, "ema": ema.module}, optimizer, pca,
                       meta(at, seconds))

    limit = max_steps if max_steps is not None else config.total_steps
    training_loop(step, limit, config, minutes, world, log, train_step, run_validation, checkpoint, "ikc")
    return last["error"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--sftmd-run", required=True, type=Path,
                        help="the frozen SFTMD: a run folder, or a shipped checkpoint such as checkpoints/sftmd_x4.safetensors")
    args = parser.parse_args(argv)
    config = load_config(args)
    train(config, args.sftmd_run, args.data, args.run_dir, args.minutes, args.steps, args.threads,
          args.from_checkpoint, args.device, args.anneal)


if __name__ == "__main__":
    main()
