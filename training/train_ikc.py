"""Train the Predictor and Corrector against a frozen SFTMD (MSE on the kernel code), resumable.

    python -m training.train_ikc --config training/configs/ikc_x4.yaml --sftmd-run runs/sftmd_x4 --run-dir runs/ikc_x4

Cheaper than the official schedule (7 SFTMD passes per step): each step takes `correction_steps`
SFTMD passes (default 2), plus `predictor_steps - 1` cheap extra Predictor updates on fresh
batches. The Corrector starts from the states it meets in the loop, the
Predictor's own (detached) guesses, plus perturbed true codes for the rest of the batch, and
follows its own updates for the following passes, so it learns from the trajectories it makes.
With `perturbed_width_std` > 0 the perturbed codes are those of Gaussians of a wrong width (see
perturbed_codes), the error an SR image shows.
"""
from __future__ import annotations

import argparse
from typing import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from ikc.archs import Corrector, EstimatorConfig, Predictor
from ikc.degradation import gaussian_kernel
from ikc.kernel_code import PCA_COMPONENTS, KernelPCA, encode, spread_projection

from .common import (RunLog, TrainConfig, add_run_arguments, load_state, prepare_device, rate_schedule, read_state,
                     save_state, setup_distributed, start_from_checkpoint, training_loop, validation_codes,
                     validation_set)
from .dataset import PatchSampler, list_images, split_holdout
from .train_sftmd import CL, build_sftmd

PERTURBATION = 0.5  # std of the random offsets added to true codes (codes have unit scale)
SPREAD_UNIT = 4.0  # kernel spread (sigma^2) is compared in units of 4 px^2 in the loss


def code_loss(pca: KernelPCA, weight: float, noise_weight: float,
              device: str | torch.device = "cpu") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """MSE on the code, plus `weight` x MSE on the kernel's spread (sigma^2, linear in the code), plus
    `noise_weight` x MSE on the noise entry.

    Plain code MSE is dominated by the PCA entries of very narrow kernels, which an x4 LR image cannot tell
    apart; the spread term points the gradient at the width, which it can. The noise entry is one of 11 in
    the MSE, yet a wrong noise level makes SFTMD smooth a clean image (measured: IKC drifted to noise 5).
    """
    offset, weights = spread_projection(pca)
    weights = torch.from_numpy(weights).float().to(device) / SPREAD_UNIT

    def loss(predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        spread_error = (predicted[:, :PCA_COMPONENTS] - true[:, :PCA_COMPONENTS]) @ weights
        noise_error = predicted[:, PCA_COMPONENTS] - true[:, PCA_COMPONENTS]
        return (F.mse_loss(predicted, true) + weight * (spread_error ** 2).mean()
                + noise_weight * (noise_error ** 2).mean())

    return loss


def perturbed_codes(codes: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, config: TrainConfig,
                    pca: KernelPCA) -> torch.Tensor:
    """Wrong codes for the Corrector to correct: Gaussians of width sigma + N(0, perturbed_width_std), clipped to
    the training range, or (with perturbed_width_std 0) the true codes plus N(0, PERTURBATION) on every entry.

    Measured: with the second kind, whose off-curve offsets the code alone reveals, the Correctors learned to
    ignore their SR image (same update whatever image they saw).
    """
    if config.perturbed_width_std <= 0:
        return codes + PERTURBATION * torch.randn_like(codes)
    widths = (sigma + config.perturbed_width_std * torch.randn_like(sigma)).clamp(config.sigma_min, config.sigma_max)
    kernels = np.stack([gaussian_kernel(float(width)) for width in widths])
    return torch.from_numpy(encode(pca, kernels, noise.numpy())).to(codes.device)


@torch.inference_mode()
def validate(sftmd, predictor, corrector, triples, codes, steps: int, pca: KernelPCA) -> tuple[float, float]:
    """RMSE of the kernel width (from the code's spread) for the Predictor alone and after `steps` corrections."""
    offset, weights = spread_projection(pca)

    def width(code: torch.Tensor) -> float:
        return np.sqrt(max(offset + code[0, :PCA_COMPONENTS].double().cpu().numpy() @ weights, 0.01))

    predictor.eval(), corrector.eval()
    device = next(predictor.parameters()).device
    first, last = [], []
    for (lr, _, _), true in zip(triples, codes):
        lr = lr.to(device)
        code = predictor(lr)
        first.append((width(code) - width(true)) ** 2)
        for _ in range(steps):
            code = code + corrector(sftmd(lr.contiguous(memory_format=CL), code).contiguous(memory_format=CL), code)
        last.append((width(code) - width(true)) ** 2)
    predictor.train(), corrector.train()
    return float(np.sqrt(np.mean(first))), float(np.sqrt(np.mean(last)))


def train(config: TrainConfig, sftmd_run: Path, data_dir: Path, run_dir: Path, minutes: float | None,
          max_steps: int | None, threads: int | None, from_checkpoint: Path | None = None, device: str = "cpu",
          anneal: bool = False) -> float:
    """Run (or resume) P/C training; returns the last validation width RMSE after correction."""
    rank, world = setup_distributed()
    prepare_device(device, threads)
    log = RunLog(run_dir, enabled=rank == 0)
    sftmd_state = sftmd_run / "state.safetensors"
    sftmd = build_sftmd(TrainConfig.from_dict(read_state(sftmd_state)[1]["config"]))  # its own architecture
    pca, sftmd_meta = load_state(sftmd_state, {"sftmd": sftmd}, None)
    sftmd.to(device).eval().requires_grad_(False)
    estimator = EstimatorConfig(nf=config.estimator_nf)
    predictor, corrector = Predictor(estimator).to(device), Corrector(estimator).to(device, memory_format=CL)
    modules = {"predictor": predictor, "corrector": corrector}
    optimizer = torch.optim.Adam([*predictor.parameters(), *corrector.parameters()], lr=config.learning_rate)
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
    train_paths, _ = split_holdout(list_images(data_dir), config.holdout_images)
    sampler = PatchSampler(train_paths, pca, config.scale, config.lr_patch, config.degradations(),
                           seed=config.seed + 1000 * rank + step, device=device)
    triples = validation_set(data_dir, config) if rank == 0 else []
    codes = validation_codes(triples, pca)
    p_net = DistributedDataParallel(predictor) if world > 1 else predictor
    c_net = DistributedDataParallel(corrector) if world > 1 else corrector
    log.line(f"training P/C against SFTMD step {sftmd_meta['step']} of {sftmd_run}, world {world}, "
             f"device {device}, anneal {anneal}, config {config.to_dict()}")

    last = {"rmse": float("nan")}
    criterion = code_loss(pca, config.spread_weight, config.noise_weight, device)
    rate = rate_schedule(config, step, minutes if anneal else None)

    def predictor_step() -> None:
        batch = sampler.sample(config.batch_size)
        optimizer.zero_grad(set_to_none=True)
        criterion(p_net(batch.lr), batch.code).backward()
        optimizer.step()  # the Corrector has no gradients here, so Adam leaves it alone

    def train_step(at: int) -> dict[str, float]:
        for group in optimizer.param_groups:
            group["lr"] = rate(at)
        for _ in range(config.predictor_steps - 1):
            predictor_step()
        batch = sampler.sample(config.batch_size)
        guess = p_net(batch.lr)
        loss_p = criterion(guess, batch.code)
        half = config.batch_size // 2
        perturbed = perturbed_codes(batch.code[half:], batch.sigma[half:], batch.noise[half:], config, pca)
        code = torch.cat([guess[:half].detach(), perturbed])
        loss_c = torch.zeros((), device=device)
        lr_cl = batch.lr.contiguous(memory_format=CL)
        for _ in range(config.correction_steps):
            with torch.no_grad():
                sr = sftmd(lr_cl, code).contiguous(memory_format=CL)
            corrected = code + c_net(sr, code)
            loss_c = loss_c + criterion(corrected, batch.code) / config.correction_steps
            code = corrected.detach()
        optimizer.zero_grad(set_to_none=True)
        (loss_p + loss_c).backward()
        optimizer.step()
        return {"loss": (loss_p + loss_c).item(), "p": loss_p.item(), "c": loss_c.item()}

    def run_validation() -> tuple[str, float]:
        rmse_p, last["rmse"] = validate(sftmd, predictor, corrector, triples, codes, config.correction_steps + 1, pca)
        return f"val_width_rmse predictor {rmse_p:.3f} corrected {last['rmse']:.3f}", last["rmse"]

    def checkpoint(at: int, seconds: float) -> None:
        if rank == 0:
            save_state(state_path, modules, optimizer, pca,
                       {"step": at, "config": config.to_dict(), "sftmd_run": str(sftmd_run),
                        "sftmd_step": sftmd_meta["step"], "val_width_rmse": last["rmse"],
                        "train_seconds": elapsed_before + seconds})

    limit = max_steps if max_steps is not None else config.total_steps
    training_loop(step, limit, config, minutes, world, log, train_step, run_validation, checkpoint, "ikc")
    return last["rmse"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--sftmd-run", required=True, type=Path, help="run folder of the frozen SFTMD")
    args = parser.parse_args(argv)
    config = TrainConfig.from_yaml(args.config)
    train(config, args.sftmd_run, args.data, args.run_dir, args.minutes, args.steps, args.threads,
          args.from_checkpoint, args.device, args.anneal)


if __name__ == "__main__":
    main()
