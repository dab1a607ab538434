"""Export trained runs to shipped checkpoints (safetensors + metadata) and refresh SHA256SUMS.

    python -m training.export --scale 4 --sftmd-run runs/sftmd_x4 [--ikc-run runs/ikc_x4] [--out checkpoints]
    python -m training.export --scale 4 --sftmd-run checkpoints/sftmd_x4.safetensors --ikc-run runs/c4/best.safetensors
    python -m training.export --scale 4 --sftmd-run checkpoints/sftmd_x4.safetensors --jpeg-sftmd-run runs/sftmd_x4_jpeg
    python -m training.export --scale 3 --sftmd-run checkpoints/sftmd_x3.safetensors --jpeg-ikc-run runs/pc3_jpeg
    python -m training.export --scale 2 --sftmd-run checkpoints/sftmd_x2.safetensors --halve-reversals on
    python -m training.export --scale 2 --sftmd-run checkpoints/sftmd_x2.safetensors --ikc-run runs/c2_near \
        --blend-with checkpoints/ikc_x2.safetensors --blend-weight 0.5

--sftmd-run may be a shipped checkpoint (copied to --out unless it is there already); --ikc-run a run folder or
one of its state files (best.safetensors: the state that converged best in validation); a state that keeps a
moving average of the weights exports the average, which is what its validation ran. --blend-with sets the
Corrector to --blend-weight x the run's + the rest x another P/C file's (weight interpolation between a fine-tuned
Corrector and the one it started from; training/LOG.md, session 21). The loop flags set, in
ikc_x{scale} (just written or already in --out, its weights unchanged), how the loop runs this Corrector:
--halve-reversals whether it halves an update that turns back (ikc.IKC.halves_reversals; that depends on how much
the Corrector overshoots), --gaussian-codes whether every update lands on the nearest isotropic Gaussian
(ikc.IKC.keeps_gaussian_codes; on by default for a run trained that way), --window-groups in how many groups of
windows the Corrector reads the image, one group a step (ikc.IKC.corrector_window_groups; 1 by default),
--window-pool how many textured windows the Predictor reads for the Corrector to pick from
(ikc.IKC.corrector_window_pool; 0 by default: no pool).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from ikc.archs import Corrector, Predictor
from ikc.checkpoint import (
    CHECKPOINT_DIR,
    estimators_path,
    jpeg_estimators_path,
    jpeg_sftmd_path,
    prefixed,
    read_file,
    read_pca,
    save_modules,
    sftmd_path,
    write_manifest,
    write_tensors,
)
from ikc.kernel_code import KernelPCA

from .config import TrainConfig, build_sftmd
from .state import read_state, restore_state, sftmd_weights

MAX_FILE_BYTES = 10 * 1024 * 1024  # a Hugging Face Space needs no large-file storage below this
LOOP_FLAGS = ("halve_reversals", "gaussian_codes")  # how the loop runs a Corrector: kept in its checkpoint (ikc.IKC)


def storage_dtype(modules: dict[str, torch.nn.Module]) -> torch.dtype:
    """float32 when the weights fit the file limit (exact resume and inference), else float16."""
    values = sum(p.numel() for m in modules.values() for p in m.state_dict().values())
    return torch.float32 if values * 4 < MAX_FILE_BYTES - 2 ** 20 else torch.float16


def data_summary(data_dir: Path) -> dict:
    """Count and manifest hash of the training photos, so a checkpoint says what it was trained on."""
    manifest = data_dir / "manifest.json"
    if not manifest.is_file():
        return {"folder": str(data_dir)}
    entries = json.loads(manifest.read_text())
    sources = sorted({entry["source"] for entry in entries})
    return {"photos": len(entries), "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
            "sources": sources}


def _common_metadata(config: TrainConfig, meta: dict, run: Path, data: dict) -> dict:
    return {"scale": config.scale, "kernel_range": [config.sigma_min, config.sigma_max],
            "noise_range": [0.0, config.noise_max],
            "training": {"run": run.name, "steps": meta["step"], "seconds": round(meta.get("train_seconds", 0), 1),
                         "hours": round(meta.get("train_seconds", 0) / 3600, 2),
                         "config": meta["config"], "data": data}}


def trained_jpeg_range(config: TrainConfig, run: Path) -> list[int]:
    """The JPEG qualities a run trained on, for a network used on JPEG inputs; SystemExit if it saw none."""
    if config.jpeg_fraction <= 0:
        raise SystemExit(f"{run} was not trained on JPEG inputs (jpeg_fraction 0)")
    return [config.jpeg_min, config.jpeg_max]


def export_sftmd(scale: int, sftmd_run: Path, target: Path, data: dict, jpeg: bool = False) -> tuple[Path, KernelPCA]:
    """Write one SFTMD (a run's state, or a shipped checkpoint copied as it is) to `target`: (path, its PCA).
    A JPEG SFTMD's metadata also keeps the JPEG qualities it was trained on."""
    if sftmd_run.is_file():  # a shipped checkpoint: kept as it is
        tensors, metadata = read_file(sftmd_run)
        if metadata["scale"] != scale:
            raise SystemExit(f"{sftmd_run} is an x{metadata['scale']} checkpoint, not x{scale}")
        if not target.exists() or not target.samefile(sftmd_run):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sftmd_run, target)
        return target, read_pca(tensors)
    tensors, meta = read_state(sftmd_run / "state.safetensors")
    config = TrainConfig.from_dict(meta["config"])
    if config.scale != scale:
        raise SystemExit(f"{sftmd_run} trained x{config.scale}, not x{scale}")
    sftmd = build_sftmd(config)
    weights = sftmd_weights(meta)
    pca = restore_state(tensors, {weights: sftmd}, None)
    metadata = {**_common_metadata(config, meta, sftmd_run, data), "sftmd": sftmd.config.to_dict(), "weights": weights}
    if jpeg:
        metadata["jpeg_range"] = trained_jpeg_range(config, sftmd_run)
    return save_modules(target, {"sftmd": sftmd}, pca, metadata, storage_dtype({"sftmd": sftmd})), pca


def export_estimators(ikc_run: Path, target: Path, pca: KernelPCA, sftmd_run: Path, data: dict,
                      jpeg: bool = False, loop_flags: dict[str, bool | int] | None = None,
                      blend_with: tuple[dict[str, torch.Tensor], dict] | None = None, blend_weight: float = 0.5) -> Path:
    """Write the Predictor and Corrector of a P/C run (its folder, or one of its state files) to `target`, with
    the given loop settings (LOOP_FLAGS, window_groups and window_pool) over those the run implies. For JPEG inputs
    (`jpeg`), the run must have trained on them, the metadata keeps their qualities, and the weights are stored in
    float16 (half the bytes, so that the tree still travels to a lent GPU with the packed photos). With `blend_with`
    (another P/C file, read with read_file) the Corrector is blended with that file's (blend_corrector)."""
    ikc_state = ikc_run if ikc_run.is_file() else ikc_run / "state.safetensors"
    tensors, meta = read_state(ikc_state)
    config = TrainConfig.from_dict(meta["config"])
    estimator = config.estimator()
    estimators = {"predictor": Predictor(estimator), "corrector": Corrector(estimator)}
    average = "ema." if any(key.startswith("ema.") for key in tensors) else ""  # the weights validation ran
    own_pca = restore_state(tensors, {average + name: module for name, module in estimators.items()}, None)
    if not np.array_equal(own_pca.matrix, pca.matrix):
        raise SystemExit(f"{ikc_run} was trained with another kernel PCA than {sftmd_run}")
    metadata = {**_common_metadata(config, meta, ikc_state.parent, data), "estimator": estimator.to_dict(),
                "sftmd_step": meta.get("sftmd_step")}
    if jpeg:
        metadata["jpeg_range"] = trained_jpeg_range(config, ikc_run)
        metadata["reads_jpeg_sftmd"] = bool(meta.get("sftmd_jpeg", False))  # the SR crops its Corrector read
    if config.gaussian_codes:
        metadata["gaussian_codes"] = True  # trained on codes kept on the Gaussians: the loop must keep them there
    metadata.update(loop_flags or {})
    if blend_with is not None:
        metadata["corrector_blend"] = blend_corrector(estimators["corrector"], pca, blend_with, blend_weight)
    return save_modules(target, estimators, pca, metadata, torch.float16 if jpeg else storage_dtype(estimators))


def set_loop_flags(path: Path, flags: dict[str, bool | int]) -> Path:
    """Rewrite a Predictor/Corrector file with the given loop settings (LOOP_FLAGS, window_groups and window_pool),
    its weights unchanged."""
    tensors, metadata = read_file(path)
    weights = {key: value for key, value in tensors.items() if not key.startswith("pca.")}
    return write_tensors(path, weights, read_pca(tensors), {**metadata, **flags}, "ikc")


def blend_corrector(corrector: Corrector, pca: KernelPCA, partner: tuple[dict[str, torch.Tensor], dict],
                    weight: float) -> dict:
    """Set the Corrector's weights to `weight` x its own + (1 - weight) x `partner`'s (another P/C file's tensors and
    metadata, read with read_file); returns the metadata entry that records the blend."""
    other, other_metadata = partner
    if not np.array_equal(read_pca(other).matrix, pca.matrix):
        raise SystemExit("--blend-with: that file's Corrector works in another kernel PCA")
    own, theirs = corrector.state_dict(), prefixed(other, "corrector")
    if {k: v.shape for k, v in theirs.items()} != {k: v.shape for k, v in own.items()}:
        raise SystemExit("--blend-with: that file's Corrector has another architecture")
    corrector.load_state_dict({key: weight * value + (1 - weight) * theirs[key].float() for key, value in own.items()})
    training = other_metadata["training"]
    return {"weight": weight, "with": {"run": training["run"], "steps": training["steps"]}}


def export(scale: int, sftmd_run: Path, ikc_run: Path | None, out: Path, data_dir: Path,
           jpeg_sftmd_run: Path | None = None, jpeg_ikc_run: Path | None = None,
           loop_flags: dict[str, bool | int] | None = None, blend_with: Path | None = None,
           blend_weight: float = 0.5) -> list[Path]:
    """Write sftmd_x{scale} (and ikc_x{scale}, sftmd_x{scale}_jpeg, ikc_x{scale}_jpeg) into `out`, and set
    ikc_x{scale}'s `loop_flags` (LOOP_FLAGS, window_groups and window_pool) where given, its Corrector blended with
    `blend_with`'s when given (blend_corrector); returns the written paths."""
    if blend_with is not None and ikc_run is None:
        raise SystemExit("--blend-with needs --ikc-run: the run's Corrector is blended with that file's")
    if not 0 <= blend_weight <= 1:  # checked before anything is written
        raise SystemExit(f"--blend-weight must be from 0 to 1, got {blend_weight}")
    partner = read_file(blend_with) if blend_with is not None else None  # read before the export may replace it
    data = data_summary(data_dir)
    target, pca = export_sftmd(scale, sftmd_run, sftmd_path(scale, out), data)
    written = [target]
    if jpeg_sftmd_run is not None:
        target, jpeg_pca = export_sftmd(scale, jpeg_sftmd_run, jpeg_sftmd_path(scale, out), data, jpeg=True)
        if not np.array_equal(jpeg_pca.matrix, pca.matrix):
            raise SystemExit(f"{jpeg_sftmd_run} was trained with another kernel PCA than {sftmd_run}")
        written.append(target)
    estimators = estimators_path(scale, out)
    if ikc_run is not None:
        written.append(export_estimators(ikc_run, estimators, pca, sftmd_run, data, loop_flags=loop_flags,
                                         blend_with=partner, blend_weight=blend_weight))
    elif loop_flags:
        if not estimators.is_file():
            raise SystemExit(f"--{' --'.join(flag.replace('_', '-') for flag in loop_flags)}: no {estimators} "
                             f"(export one with --ikc-run)")
        written.append(set_loop_flags(estimators, loop_flags))
    if jpeg_ikc_run is not None:
        written.append(export_estimators(jpeg_ikc_run, jpeg_estimators_path(scale, out), pca, sftmd_run, data,
                                         jpeg=True))
    for path in written:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SystemExit(f"{path} is {path.stat().st_size / 2**20:.1f} MiB, over the 10 MiB limit for a Space")
    write_manifest(out)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    parser.add_argument("--sftmd-run", required=True, type=Path, help="SFTMD run folder or shipped checkpoint")
    parser.add_argument("--ikc-run", type=Path, help="Predictor/Corrector run folder or state file (omit for SFTMD "
                                                     "only)")
    parser.add_argument("--jpeg-sftmd-run", type=Path, help="an SFTMD run trained on JPEG inputs (jpeg_fraction > 0): "
                                                           "shipped as sftmd_x{scale}_jpeg, used for JPEG inputs")
    parser.add_argument("--jpeg-ikc-run", type=Path, help="a Predictor/Corrector run trained on JPEG inputs: shipped "
                                                         "as ikc_x{scale}_jpeg, used for JPEG inputs")
    parser.add_argument("--halve-reversals", choices=("on", "off"),
                        help="whether the loop halves ikc_x{scale}'s Corrector updates that turn back (default: as "
                             "the file says; a new file: off)")
    parser.add_argument("--gaussian-codes", choices=("on", "off"),
                        help="whether the loop moves each of ikc_x{scale}'s Corrector updates onto the nearest "
                             "isotropic Gaussian (default: as the file says; a new file: as the run trained)")
    parser.add_argument("--window-groups", type=int,
                        help="how many groups of windows ikc_x{scale}'s Corrector reads in turn, one group a step "
                             "(ikc.IKC.corrector_window_groups; default: as the file says; a new file: 1)")
    parser.add_argument("--window-pool", type=int,
                        help="how many textured windows ikc_x{scale}'s Predictor reads, its Corrector reading the "
                             "most typical of them (ikc.IKC.corrector_window_pool; default: as the file says; a new "
                             "file: 0, no pool)")
    parser.add_argument("--blend-with", type=Path, help="a P/C file (e.g. the shipped ikc_x{scale}) whose Corrector "
                        "is blended with the run's")
    parser.add_argument("--blend-weight", type=float, default=0.5, help="the run's share of the blended Corrector")
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR)
    parser.add_argument("--data", type=Path, default=Path("data/train"), help="training photos (for metadata)")
    args = parser.parse_args(argv)
    flags = {flag: getattr(args, flag) == "on" for flag in LOOP_FLAGS if getattr(args, flag) is not None}
    if args.window_groups is not None:
        if args.window_groups < 1:
            parser.error(f"--window-groups must be 1 or more, got {args.window_groups}")
        flags["window_groups"] = args.window_groups
    if args.window_pool is not None:
        if args.window_pool < 0:
            parser.error(f"--window-pool must be 0 or more, got {args.window_pool}")
        flags["window_pool"] = args.window_pool
    for path in export(args.scale, args.sftmd_run, args.ikc_run, args.out, args.data, args.jpeg_sftmd_run,
                       args.jpeg_ikc_run, flags, args.blend_with, args.blend_weight):
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
