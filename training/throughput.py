"""How fast does SFTMD train on this device? LR pixels per second, peak memory and a held-out loss per setting.

    python -m training.throughput --device cuda --seconds 20 [--scale 4] [--settings b32p48,b64p64+amp,...]
                                  [--json F] [--choice F]

A setting is `b<batch>p<LR patch>` plus options: `+amp` (bf16 autocast), `+compile` (torch.compile), `+nchw`
(no channels_last). Each one trains its own copy of the shipped SFTMD (random weights without a checkpoint) for
--seconds, after a few uncounted warm-up steps (cuDNN's search, compilation), then scores a fixed batch of
held-out patches (L1 in fp32), so a setting that is fast but learns badly shows. The data sampler is timed on its
own as well, to tell when it is the bottleneck. --choice writes the `--set` options of the fastest setting whose
held-out loss is within 1% of the best, for training/lent_gpu.sh.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ikc.checkpoint import CHECKPOINT_DIR, sftmd_path
from ikc.kernel_code import fit_pca

from .config import CL, TrainConfig, build_sftmd
from .dataset import PatchSampler, list_images, split_holdout
from .loop import prepare_device
from .state import start_from_checkpoint
from .train_sftmd import sftmd_step

DEFAULT_SETTINGS = {"cuda": "b32p48,b32p48+amp,b64p64+amp,b128p64+amp,b64p64+amp+compile", "cpu": "b8p32,b8p32+nchw"}
WARMUP_STEPS = 3
VALIDATION_PATCHES = 16
VALIDATION_PATCH = 32
LOSS_TOLERANCE = 1.01  # a faster setting is chosen only if its held-out loss is within 1% of the best


@dataclass(frozen=True)
class Setting:
    batch: int
    patch: int
    amp: bool = False
    compile: bool = False
    channels_last: bool = True

    @classmethod
    def parse(cls, text: str) -> "Setting":
        """"b64p64+amp" -> Setting(64, 64, amp=True); ValueError names what is not understood."""
        match = re.fullmatch(r"b(\d+)p(\d+)((?:\+(?:amp|compile|nchw))*)", text.strip())
        if not match:
            raise ValueError(f"a setting is b<batch>p<patch> with +amp, +compile or +nchw, got {text!r}")
        options = set(match.group(3).split("+")[1:])
        return cls(int(match.group(1)), int(match.group(2)), "amp" in options, "compile" in options,
                   "nchw" not in options)

    def overrides(self) -> list[str]:
        """The setting as training --set options."""
        return [f"batch_size={self.batch}", f"lr_patch={self.patch}", f"amp={str(self.amp).lower()}",
                f"compile={str(self.compile).lower()}"]


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory so far: the CUDA allocator's on a GPU, the process's resident size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def held_out_loss(model: torch.nn.Module, batch) -> float:
    """L1 of the model's output on the fixed held-out batch, fp32, no gradients."""
    model.eval()
    with torch.no_grad():
        loss = F.l1_loss(model(batch.lr.contiguous(memory_format=CL), batch.code).float(), batch.hr)
    model.train()
    return float(loss)


def probe(setting: Setting, base: torch.nn.Module, sampler: PatchSampler, validation, config: TrainConfig,
          seconds: float, device: torch.device) -> dict:
    """Train a copy of `base` with `setting` for `seconds`; its speed, memory and held-out loss after."""
    model = copy.deepcopy(base).to(memory_format=CL if setting.channels_last else torch.contiguous_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.99))
    net = torch.compile(model) if setting.compile else model
    layout = CL if setting.channels_last else torch.contiguous_format
    sampler.hr_patch = setting.patch * config.scale

    def step() -> torch.Tensor:
        return sftmd_step(net, optimizer, sampler.sample(setting.batch), device, setting.amp, layout)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(WARMUP_STEPS):
        step()
    synchronize(device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    synchronize(device)
    elapsed = time.perf_counter() - start
    data_start = time.perf_counter()
    for _ in range(max(1, steps // 4)):
        sampler.sample(setting.batch)
    synchronize(device)
    data_rate = max(1, steps // 4) * setting.batch * setting.patch ** 2 / (time.perf_counter() - data_start)
    pixels = steps * setting.batch * setting.patch ** 2
    return {"setting": asdict(setting), "steps": steps, "seconds": round(elapsed, 2),
            "lr_pixels_per_second": round(pixels / elapsed), "data_lr_pixels_per_second": round(data_rate),
            "peak_memory_mib": round(peak_memory_mib(device), 1), "lr_pixels_seen": pixels,
            "held_out_l1": round(held_out_loss(model, validation), 5)}


def choose(results: list[dict]) -> dict:
    """The fastest result whose held-out loss is within LOSS_TOLERANCE of the lowest."""
    lowest = min(r["held_out_l1"] for r in results)
    fit = [r for r in results if r["held_out_l1"] <= lowest * LOSS_TOLERANCE]
    return max(fit, key=lambda r: r["lr_pixels_per_second"])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed training per setting")
    parser.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    parser.add_argument("--config", type=Path, help="SFTMD config (default: training/configs/sftmd_x<S>_gpu.yaml)")
    parser.add_argument("--settings", help="comma list of settings (default: a grid for the device)")
    parser.add_argument("--data", type=Path, default=Path("data/train"), help="folder of HR training photos")
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINT_DIR, help="where the SFTMD to start from is")
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--choice", type=Path, help="write the chosen setting's --set options here, one line")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    try:
        settings = [Setting.parse(text) for text in (args.settings or DEFAULT_SETTINGS[device.type]).split(",")]
    except (ValueError, KeyError) as error:
        parser.error(str(error))
    prepare_device(args.device, args.threads)
    config = TrainConfig.from_yaml(args.config or Path(f"training/configs/sftmd_x{args.scale}_gpu.yaml"))
    base = build_sftmd(config).to(device)
    checkpoint = sftmd_path(args.scale, args.checkpoints)
    if checkpoint.is_file():
        pca, _, _ = start_from_checkpoint(checkpoint, {"sftmd": base}, args.scale)
    else:
        pca = fit_pca(config.sigma_min, config.sigma_max, seed=config.pca_seed)
    train_paths, held = split_holdout(list_images(args.data), config.holdout_images)
    largest = max(s.patch for s in settings)
    sampler = PatchSampler(train_paths, pca, args.scale, largest, config.degradations(), seed=0, device=device)
    validation = PatchSampler(held or train_paths, pca, args.scale, VALIDATION_PATCH, config.degradations(),
                              seed=1, device=device).sample(VALIDATION_PATCHES)
    results = []
    for setting in settings:
        result = probe(setting, base, sampler, validation, config, args.seconds, device)
        results.append(result)
        print(f"{setting}: {result['lr_pixels_per_second'] / 1e3:,.0f}k LR px/s (data alone "
              f"{result['data_lr_pixels_per_second'] / 1e3:,.0f}k), {result['peak_memory_mib']:,.0f} MiB, "
              f"held-out L1 {result['held_out_l1']:.5f} after {result['lr_pixels_seen'] / 1e6:.1f}M px", flush=True)
    chosen = choose(results)
    print(f"chosen: {chosen['setting']}")
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "results": results, "chosen": chosen}, indent=1))
    if args.choice:
        args.choice.write_text(" ".join(f"--set {o}" for o in Setting(**chosen["setting"]).overrides()) + "\n")
    return results


if __name__ == "__main__":
    main()
