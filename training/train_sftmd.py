"""Train SFTMD with the true kernel code: L1 loss, Adam, warm-up + cosine, resumable.

    python -m training.train_sftmd --config training/configs/sftmd_x4.yaml --run-dir runs/sftmd_x4 [--minutes 60]
                                   [--set amp=true --set ema_decay=0.999 ...]
Multi-process: torchrun --nproc_per_node 2 -m training.train_sftmd ... (DistributedDataParallel, gloo).
With `amp` the forward pass runs under bf16 autocast; with `ema_decay` an exponential moving average of the
weights is kept, validated beside them and saved in the state ("ema"), and export takes it when it validated
better.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from ikc.archs import SFTMD
from ikc.kernel_code import fit_pca

from .config import CL, TrainConfig, add_run_arguments, build_sftmd, load_config
from .dataset import PatchSampler, list_images, split_holdout
from .loop import RunLog, autocast, prepare_device, rate_schedule, setup_distributed, training_loop
from .state import load_state, resumed_average, save_state, start_from_checkpoint
from .validation import ValidationCrop, mean_psnr, validation_set


def sftmd_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, batch, device: str | torch.device,
               amp: bool, layout: torch.memory_format = CL) -> torch.Tensor:
    """One L1 step on a batch, the forward under bf16 autocast when `amp`; the loss is returned, not read back."""
    with autocast(device, amp):
        sr = net(batch.lr.contiguous(memory_format=layout), batch.code, batch.compression)
    loss = F.l1_loss(sr.float(), batch.hr.contiguous(memory_format=layout))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.inference_mode()
def validate(model: SFTMD, crops: list[ValidationCrop]) -> float:
    """Mean PSNR-Y on the held-out crops, SFTMD given the true code (and compression level)."""
    model.eval()
    device = next(model.parameters()).device
    outputs = [model(crop.lr.to(device).contiguous(memory_format=CL), crop.code.to(device),
                     crop.compression.to(device)) for crop in crops]
    model.train()
    return mean_psnr(outputs, crops, model.config.scale)


def train(config: TrainConfig, data_dir: Path, run_dir: Path, minutes: float | None, max_steps: int | None,
          threads: int | None, from_checkpoint: Path | None = None, device: str = "cpu",
          anneal: bool = False) -> float:
    """Run (or resume) training until the time budget, max_steps or total_steps; returns last val PSNR."""
    rank, world = setup_distributed()
    prepare_device(device, threads)
    log = RunLog(run_dir, enabled=rank == 0)
    state_path = run_dir / "state.safetensors"
    model = build_sftmd(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.99))
    step, best, elapsed_before = 0, float("-inf"), 0.0
    if state_path.exists():
        pca, meta = load_state(state_path, {"sftmd": model}, optimizer)
        step, best, elapsed_before = meta["step"], meta.get("best_psnr", best), meta.get("train_seconds", 0.0)
        log.line(f"resumed from step {step}")
    elif from_checkpoint is not None:
        pca, step, elapsed_before = start_from_checkpoint(from_checkpoint, {"sftmd": model}, config.scale, log)
    else:
        pca = fit_pca(0.2, 4.0, seed=config.pca_seed)
    ema = resumed_average(model, config.ema_decay, state_path)  # or from the weights above
    train_paths, _ = split_holdout(list_images(data_dir), config.holdout_images)
    sampler = PatchSampler(train_paths, pca, config.scale, config.lr_patch, config.degradations(),
                           seed=config.seed + 1000 * rank + step, device=device)
    crops = validation_set(data_dir, config, pca) if rank == 0 else []
    net = DistributedDataParallel(model) if world > 1 else model
    net = torch.compile(net) if config.compile else net
    log.line(f"training {sum(p.numel() for p in model.parameters())} parameters on {len(sampler.images)} photos, "
             f"world {world}, device {device}, anneal {anneal}, config {config.to_dict()}")

    last = {"psnr": float("nan"), "best": best, "ema_psnr": float("nan")}
    rate = rate_schedule(config, step, minutes if anneal else None)

    def train_step(at: int) -> dict[str, torch.Tensor]:
        batch = sampler.sample(config.batch_size)
        for group in optimizer.param_groups:
            group["lr"] = rate(at)
        loss = sftmd_step(net, optimizer, batch, device, config.amp)
        if ema is not None:
            ema.update_parameters(model)
        return {"loss": loss}

    def run_validation(at: int, seconds: float) -> tuple[str, float]:
        psnr = validate(model, crops)
        last.update(psnr=psnr, best=max(last["best"], psnr))
        if ema is None:
            return f"val_psnr_y {psnr:.3f}", psnr
        last["ema_psnr"] = validate(ema.module, crops)
        return f"val_psnr_y {psnr:.3f} ema {last['ema_psnr']:.3f}", psnr

    def checkpoint(at: int, seconds: float) -> None:
        if rank == 0:
            modules = {"sftmd": model} if ema is None else {"sftmd": model, "ema": ema.module}
            save_state(state_path, modules, optimizer, pca,
                       {"step": at, "best_psnr": last["best"], "config": config.to_dict(), "last_psnr": last["psnr"],
                        "ema_psnr": last["ema_psnr"], "train_seconds": elapsed_before + seconds})

    limit = max_steps if max_steps is not None else config.total_steps
    training_loop(step, limit, config, minutes, world, log, train_step, run_validation, checkpoint, "sftmd")
    return last["psnr"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    config = load_config(args)
    train(config, args.data, args.run_dir, args.minutes, args.steps, args.threads, args.from_checkpoint,
          args.device, args.anneal)


if __name__ == "__main__":
    main()
