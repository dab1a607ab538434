"""What both training scripts share: configs, resumable state files, the LR schedule, logging, DDP."""
from __future__ import annotations

import argparse
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ikc.checkpoint import module_tensors, prefixed, read_file, read_pca, read_tensors, write_tensors
from ikc.degradation import centre_crop, degrade, gaussian_kernel, modcrop
from ikc.imageio import load_image
from ikc.kernel_code import KernelPCA, encode
from ikc.metrics import psnr_y_torch

from .dataset import DegradationRange, list_images, split_holdout

STATE_KEY = "meta"  # run states keep their metadata under this key (shipped files: "ikc")


@dataclass
class TrainConfig:
    """One training run, read from a YAML file in training/configs."""

    scale: int = 4
    nf: int = 64
    nb: int = 16
    bicubic_skip: bool = True
    estimator_nf: int = 64
    batch_size: int = 16
    lr_patch: int = 32
    learning_rate: float = 2e-4
    min_learning_rate: float = 1e-6
    warmup_steps: int = 100
    total_steps: int = 20000
    correction_steps: int = 3
    predictor_steps: int = 1
    spread_weight: float = 0.0
    overestimate_weight: float = 1.0  # a too-wide width costs this many times a too-narrow one in the spread term
    perturbed_width_std: float = 0.0
    uniform_start_fraction: float = 0.0
    predictor_start_fraction: float = 0.5
    train_predictor: bool = True
    texture_pick: int = 1
    replay_fraction: float = 0.0  # share of each P/C batch that carries on earlier batches' trajectories
    replay_rounds: int = 2  # a trajectory is carried on into at most this many later batches
    noise_weight: float = 0.0
    sigma_min: float = 0.2
    sigma_max: float = 4.0
    noise_max: float = 25.0
    clean_fraction: float = 0.5
    jpeg_fraction: float = 0.0  # share of LR patches saved as JPEG, at a quality drawn from [jpeg_min, jpeg_max]
    jpeg_min: int = 30
    jpeg_max: int = 95
    validation_jpeg: int | None = None  # also validate on the held-out LR crops saved as JPEG at this quality
    pca_seed: int = 0
    seed: int = 0
    holdout_images: int = 4
    validate_every: int = 200
    checkpoint_minutes: float = 5.0
    log_every: int = 20  # the loss is read back (a host-device sync on a GPU) only every this many steps
    amp: bool = False  # bf16 autocast for the forward passes (fp32 master weights); measured slower on this CPU
    ema_decay: float = 0.0  # > 0: keep an exponential moving average of the weights, validated and exportable
    compile: bool = False  # torch.compile the trained network (measured slower on this CPU)
    validation_sigmas: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0])

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "TrainConfig":
        """The file's values, then `overrides` (e.g. from --set); unknown keys are refused, naming them."""
        values = yaml.safe_load(Path(path).read_text()) or {}
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return cls(**values)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """The config stored in a state file; keys of fields since removed are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def degradations(self) -> DegradationRange:
        return DegradationRange(self.sigma_min, self.sigma_max, self.noise_max, self.clean_fraction,
                                self.jpeg_fraction, self.jpeg_min, self.jpeg_max)

    def to_dict(self) -> dict:
        return asdict(self)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options every training script takes."""
    parser.add_argument("--config", required=True, help="YAML file with TrainConfig fields")
    parser.add_argument("--run-dir", required=True, type=Path, help="run folder: state, log.txt, metrics.csv")
    parser.add_argument("--data", type=Path, default=Path("data/train"), help="folder of HR training photos")
    parser.add_argument("--minutes", type=float, help="stop (and save) after this many minutes")
    parser.add_argument("--steps", type=int, help="stop at this global step (default: total_steps)")
    parser.add_argument("--threads", type=int, help="torch threads per process")
    parser.add_argument("--device", default="cpu", help="torch device to train on: cpu (default) or cuda")
    parser.add_argument("--anneal", action="store_true",
                        help="with --minutes: one cosine from learning_rate down to min_learning_rate over those "
                             "minutes, wherever the run resumes (for a lent GPU, whose step rate is not known ahead)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=config_override,
                        help="override one config value (YAML syntax), e.g. --set batch_size=64 --set amp=true")
    parser.add_argument("--from-checkpoint", type=Path,
                        help="with no state in --run-dir yet: start from this shipped checkpoint (its weights, PCA, "
                             "step and hours; for another scale, the weights whose shapes fit, from step 0)")


def config_override(text: str) -> tuple[str, object]:
    """"batch_size=64" -> ("batch_size", 64): the value read as YAML, like the config files."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def load_config(args: argparse.Namespace) -> TrainConfig:
    """The run's config: --config, then each --set."""
    return TrainConfig.from_yaml(args.config, **dict(args.set))


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


def save_state(path: Path, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer,
               pca: KernelPCA, meta: dict) -> None:
    """Everything needed to resume: weights, Adam moments, PCA and step, as safetensors (no pickle), atomically."""
    tensors = module_tensors(modules)
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            value = torch.as_tensor(value).cpu()
            tensors[f"optim.{index}.{key}"] = value.reshape(-1) if key == "step" else value.contiguous()
    write_tensors(path, tensors, pca, meta, STATE_KEY)


def read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a state file written by save_state."""
    return read_tensors(path, STATE_KEY)


def sftmd_weights(meta: dict) -> str:
    """Which weights of an SFTMD state to export: "ema" (the moving average) when it validated better, else
    "sftmd" (the trained weights)."""
    return "ema" if meta.get("ema_psnr", math.nan) > meta.get("last_psnr", math.nan) else "sftmd"  # NaN: never


def load_state(path: Path, modules: dict[str, nn.Module],
               optimizer: torch.optim.Optimizer | None) -> tuple[KernelPCA, dict]:
    """Restore what save_state wrote; returns the PCA and the metadata (step, config, ...)."""
    tensors, meta = read_state(path)
    for name, module in modules.items():
        module.load_state_dict(prefixed(tensors, name))
    if optimizer is not None:
        state = optimizer.state_dict()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for key, value in prefixed(tensors, "optim").items():
            index, name = key.split(".", 1)
            # moments take the parameter's memory layout (channels_last) again
            value = value.reshape(()) if name == "step" else torch.empty_like(params[int(index)]).copy_(value)
            state["state"].setdefault(int(index), {})[name] = value
        optimizer.load_state_dict(state)
    return KernelPCA.from_tensors(prefixed(tensors, "pca")), meta


def start_from_checkpoint(path: Path, modules: dict[str, nn.Module], scale: int,
                          log: RunLog | None = None) -> tuple[KernelPCA, int, float]:
    """Fill `modules` from a shipped checkpoint (tensors whose shapes fit); returns (PCA, step, seconds).

    The step and hours carry on for the same scale; another scale (x2/x3 from the x4 body) starts at 0.
    """
    tensors, metadata = read_file(path)
    copied = total = 0
    for name, module in modules.items():
        own = module.state_dict()
        fitting = {k: v.float() for k, v in prefixed(tensors, name).items() if k in own and own[k].shape == v.shape}
        module.load_state_dict({**own, **fitting})
        copied, total = copied + len(fitting), total + len(own)
    same_scale = metadata["scale"] == scale
    training = metadata["training"]
    step, seconds = (training["steps"], training["seconds"]) if same_scale else (0, 0.0)
    if log is not None:
        log.line(f"started from {path}: {copied}/{total} tensors, step {step}")
    return read_pca(tensors), step, seconds


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


def validation_set(data_dir: Path, config: TrainConfig, crop: int = 192) -> list[tuple[torch.Tensor, torch.Tensor,
                                                                                       torch.Tensor]]:
    """Held-out (LR, HR, true code) triples: centre crops of the held-out photos at fixed widths, each also
    saved as JPEG at `validation_jpeg` when the run trains on JPEG."""
    _, held = split_holdout(list_images(data_dir), config.holdout_images)
    triples = []
    for path in held:
        image = load_image(path)
        hr_pixels = modcrop(centre_crop(image, crop), config.scale)
        hr = torch.from_numpy(np.ascontiguousarray(hr_pixels)).permute(2, 0, 1)[None].float() / 255
        for sigma in config.validation_sigmas:
            kernel = gaussian_kernel(sigma)
            for quality in dict.fromkeys([None, config.validation_jpeg]):
                triples.append((degrade(hr, torch.from_numpy(kernel), config.scale, jpeg_quality=quality), hr, kernel))
    return triples


def validation_codes(triples, pca: KernelPCA) -> list[torch.Tensor]:
    """True codes (noise 0) for the validation triples."""
    return [torch.from_numpy(encode(pca, kernel[None], 0.0)) for _, _, kernel in triples]


def mean_psnr(outputs: list[torch.Tensor], triples, scale: int) -> float:
    """Mean PSNR-Y (border = scale) of outputs against the validation HR crops."""
    return float(np.mean([psnr_y_torch((o.cpu() * 255).round() / 255, hr, scale).item()
                          for o, (_, hr, _) in zip(outputs, triples)]))
