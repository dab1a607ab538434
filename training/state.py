"""Run states: everything needed to resume (weights, Adam moments, PCA, step), and starting from a shipped
checkpoint."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ikc.checkpoint import module_tensors, prefixed, read_file, read_pca, read_tensors, write_tensors
from ikc.kernel_code import KernelPCA

from .loop import RunLog, exponential_average

STATE_KEY = "meta"  # run states keep their metadata under this key (shipped files: "ikc")



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
    """Tensors and metadata of a state file written by save_state; a file without a run's metadata (a shipped
    checkpoint, say) is refused with a message that says what to pass instead."""
    try:
        return read_tensors(path, STATE_KEY)
    except KeyError:
        raise SystemExit(f"{path} is not a training run's state (a shipped checkpoint?): pass a run folder or its "
                         "state.safetensors") from None


def sftmd_weights(meta: dict) -> str:
    """Which weights of an SFTMD state to export: "ema" (the moving average) when it validated better, else
    "sftmd" (the trained weights)."""
    return "ema" if meta.get("ema_psnr", math.nan) > meta.get("last_psnr", math.nan) else "sftmd"  # NaN: never


def resumed_average(model: nn.Module, decay: float, state_path: Path) -> AveragedModel | None:
    """exponential_average of `model` (None when decay is 0), going on from the average a run's state saved under
    "ema" when there is one; else it starts from the model's weights."""
    ema = exponential_average(model, decay)
    saved = prefixed(read_state(state_path)[0], "ema") if ema is not None and state_path.exists() else {}
    if saved:
        ema.module.load_state_dict(saved)
        ema.n_averaged.fill_(1)  # an average to go on from, not to be overwritten by the first update
    return ema


def load_state(path: Path, modules: dict[str, nn.Module],
               optimizer: torch.optim.Optimizer | None) -> tuple[KernelPCA, dict]:
    """Restore what save_state wrote; returns the PCA and the metadata (step, config, ...)."""
    tensors, meta = read_state(path)
    return restore_state(tensors, modules, optimizer), meta


def restore_state(tensors: dict[str, torch.Tensor], modules: dict[str, nn.Module],
                  optimizer: torch.optim.Optimizer | None) -> KernelPCA:
    """Fill `modules` (and the optimizer's moments) from a state's tensors, as read by read_state; returns its PCA."""
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
    return KernelPCA.from_tensors(prefixed(tensors, "pca"))


def widened(weight: torch.Tensor, own: torch.Tensor) -> torch.Tensor | None:
    """`weight` for a tensor shaped like `own`: itself when the shapes match; for a conv that reads more input
    channels, its weights on the first ones and zero on the new ones (the network starts as it was); else None."""
    if weight.shape == own.shape:
        return weight
    if weight.dim() == 4 and weight.shape[0] == own.shape[0] and weight.shape[2:] == own.shape[2:] \
            and weight.shape[1] < own.shape[1]:
        grown = torch.zeros_like(own, dtype=weight.dtype)
        grown[:, :weight.shape[1]] = weight
        return grown
    return None


def start_from_checkpoint(path: Path, modules: dict[str, nn.Module], scale: int,
                          log: RunLog | None = None) -> tuple[KernelPCA, int, float]:
    """Fill `modules` from a shipped checkpoint (tensors whose shapes fit); returns (PCA, step, seconds).

    The step and hours carry on for the same scale; another scale (x2/x3 from the x4 body) starts at 0. A conv
    that now reads more input channels keeps the checkpoint's weights for the old ones (see widened).
    """
    tensors, metadata = read_file(path)
    copied = total = 0
    for name, module in modules.items():
        own = module.state_dict()
        fitting = {k: widened(v.float(), own[k]) for k, v in prefixed(tensors, name).items()
                   if k in own and widened(v, own[k]) is not None}
        module.load_state_dict({**own, **fitting})
        copied, total = copied + len(fitting), total + len(own)
    same_scale = metadata["scale"] == scale
    training = metadata["training"]
    step, seconds = (training["steps"], training["seconds"]) if same_scale else (0, 0.0)
    if log is not None:
        log.line(f"started from {path}: {copied}/{total} tensors, step {step}")
    return read_pca(tensors), step, seconds
