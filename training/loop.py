"""The training loop and what it runs on: LR schedule, bf16 autocast, weight averaging, devices, DDP, stop
signals and the run's log."""
from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from .config import TrainConfig


def autocast(device: str | torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast on `device` when enabled (the weights and optimizer stay fp32)."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def exponential_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """An EMA copy of `model`'s weights and buffers (torch's AveragedModel), or None when decay is 0."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to the minimum over total_steps."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    return cosine(config, (step - config.warmup_steps) / max(1, config.total_steps - config.warmup_steps))


def cosine(config: TrainConfig, progress: float) -> float:
    """The rate `progress` (0 to 1) of the way down the cosine from learning_rate to min_learning_rate."""
    span = config.learning_rate - config.min_learning_rate
    return config.min_learning_rate + 0.5 * span * (1 + math.cos(math.pi * min(1.0, progress)))


def rate_schedule(config: TrainConfig, start_step: int, anneal_minutes: float | None = None) -> Callable[[int], float]:
    """Step -> learning rate: `learning_rate` by step or, with anneal_minutes, a warm-up over the steps after
    start_step, then the cosine by wall-clock time from this call, reaching the minimum after anneal_minutes."""
    if anneal_minutes is None:
        return lambda step: learning_rate(step, config)
    start = time.time()

    def rate(step: int) -> float:
        if step - start_step < config.warmup_steps:
            return learning_rate(step - start_step, config)  # the warm-up part of the step schedule
        return cosine(config, (time.time() - start) / (anneal_minutes * 60))

    return rate


def prepare_device(device: str, threads: int | None) -> None:
    """Set the CPU thread count; on CUDA, let cuDNN pick the fastest convolutions for the fixed patch size."""
    if threads:
        torch.set_num_threads(threads)
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True


def setup_distributed() -> tuple[int, int]:
    """(rank, world size); starts a gloo process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank() if world > 1 else 0), world


class StopSignal:
    """Within `with`, SIGTERM / SIGINT only set a flag, so a killed run still saves its state."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __enter__(self) -> "StopSignal":
        self.requested = False
        self.previous = {s: signal.signal(s, self._request) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _request(self, signum, frame) -> None:
        self.requested = True


def any_rank(flag: bool, world: int) -> bool:
    """True on every rank when `flag` is true on any of them (so all ranks stop together)."""
    if world == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(value)
    return bool(value.item() > 0)


class RunLog:
    """Appends lines to run/log.txt and rows to run/metrics.csv (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.run_dir, self.enabled = run_dir, enabled
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)

    def line(self, text: str) -> None:
        if self.enabled:
            with open(self.run_dir / "log.txt", "a") as handle:
                handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def metrics(self, step: int, loss: float, seconds: float, validation: float | None = None) -> None:
        """One CSV row; `validation` (PSNR-Y for SFTMD, code RMSE for P/C) is empty between validations."""
        if not self.enabled:
            return
        path = self.run_dir / "metrics.csv"
        new = not path.exists()
        with open(path, "a") as handle:
            if new:
                handle.write("step,loss,seconds,validation\n")
            value = "" if validation is None else f"{validation:.4f}"
            handle.write(f"{step},{loss:.5f},{seconds:.1f},{value}\n")


def training_loop(step: int, limit: int, config: TrainConfig, minutes: float | None, world: int, log: RunLog,
                  train_step: Callable[[int], dict[str, torch.Tensor]],
                  validate: Callable[[int, float], tuple[str, float]],
                  checkpoint: Callable[[int, float], None], desc: str) -> int:
    """Steps until `limit`, the time budget or a stop signal; logs, validates, checkpoints every few minutes.

    train_step(step) returns its losses as tensors (key "loss" is the total), read back only every log_every
    steps, so a GPU is not made to wait for each step; validate(step, seconds_in_this_process) returns
    (log text, value); checkpoint(step, seconds_in_this_process) saves the state. Returns the last step.
    """
    start = last_save = time.time()
    with StopSignal() as stop:
        bar = tqdm(total=limit, initial=step, disable=not log.enabled, desc=desc, dynamic_ncols=True)
        while step < limit:
            losses = train_step(step)
            step += 1
            bar.update(1)
            logged = step % config.log_every == 0
            validating = step % config.validate_every == 0
            if log.enabled and (logged or validating):
                values = {k: float(v) for k, v in losses.items()}
                bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()})
                if logged:
                    log.metrics(step, values["loss"], time.time() - start)
            if log.enabled and validating:
                text, value = validate(step, time.time() - start)
                log.line(f"step {step} {text}")
                log.metrics(step, values["loss"], time.time() - start, value)
            if time.time() - last_save > config.checkpoint_minutes * 60:
                checkpoint(step, time.time() - start)
                last_save = time.time()
            if any_rank(stop.requested or (minutes is not None and time.time() - start > minutes * 60), world):
                break
        bar.close()
    checkpoint(step, time.time() - start)
    log.line(f"stopped at step {step} after {(time.time() - start) / 60:.1f} min")
    return step
