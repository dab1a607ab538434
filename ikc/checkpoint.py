"""Safetensors checkpoints with their metadata (never pickle), and the SHA256SUMS manifest beside them.

Shipped files, per scale s:
  checkpoints/sftmd_x{s}.safetensors   SFTMD weights, PCA, metadata
  checkpoints/ikc_x{s}.safetensors     Predictor and Corrector weights, the same PCA, metadata
  checkpoints/sftmd_x{s}_jpeg.safetensors   optional: an SFTMD trained on JPEG-compressed LR images, the same PCA
  checkpoints/ikc_x{s}_jpeg.safetensors     optional: a Predictor and Corrector trained on JPEG-compressed LR images
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .kernel_code import KernelPCA


def shipped_folder(name: str) -> Path:
    """A folder that ships beside the code: in a clone (or an editable install) at the repository root; in a
    package installed with pip, under <prefix>/share/ikc-studio (the data-files of pyproject.toml)."""
    clone = Path(__file__).resolve().parent.parent / name
    return clone if clone.is_dir() else Path(sys.prefix) / "share" / "ikc-studio" / name


# IKC_CHECKPOINTS points the app, the CLI and the scripts at another folder (tests use tiny ones)
CHECKPOINT_DIR = Path(os.environ.get("IKC_CHECKPOINTS") or shipped_folder("checkpoints"))
MANIFEST = "SHA256SUMS"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged or does not fit; the message says what to do."""


def sftmd_path(scale: int, folder: Path = CHECKPOINT_DIR) -> Path:
    return Path(folder) / f"sftmd_x{scale}.safetensors"


def jpeg_sftmd_path(scale: int, folder: Path = CHECKPOINT_DIR) -> Path:
    return Path(folder) / f"sftmd_x{scale}_jpeg.safetensors"


def estimators_path(scale: int, folder: Path = CHECKPOINT_DIR) -> Path:
    return Path(folder) / f"ikc_x{scale}.safetensors"


def jpeg_estimators_path(scale: int, folder: Path = CHECKPOINT_DIR) -> Path:
    return Path(folder) / f"ikc_x{scale}_jpeg.safetensors"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def module_tensors(modules: dict[str, nn.Module], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The modules' weights named `name.key` (on the CPU, in `dtype` when given)."""
    return {f"{name}.{key}": value.detach().cpu().to(dtype or value.dtype).contiguous()
            for name, module in modules.items() for key, value in module.state_dict().items()}


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors named `prefix.*`, with the prefix removed."""
    return {key[len(prefix) + 1:]: value for key, value in tensors.items() if key.startswith(prefix + ".")}


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], pca: KernelPCA, metadata: dict, key: str) -> Path:
    """Write tensors, the PCA and JSON metadata (under `key`) as safetensors, atomically: a reader never sees a
    half-written file, even when a run is killed mid-write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    save_file({**tensors, **{f"pca.{k}": v for k, v in pca.tensors().items()}}, str(temporary),
              metadata={key: json.dumps(metadata)})
    temporary.replace(path)
    return path


def read_tensors(path: Path, key: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and the JSON metadata stored under `key` by write_tensors."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as handle:
        return tensors, json.loads((handle.metadata() or {})[key])


def save_modules(path: Path, modules: dict[str, nn.Module], pca: KernelPCA, metadata: dict,
                 dtype: torch.dtype = torch.float16) -> Path:
    """Write the modules' weights (prefixed by their names), the PCA and metadata to one shipped file."""
    return write_tensors(path, module_tensors(modules, dtype), pca, {"format": FORMAT_VERSION, **metadata}, "ikc")


def write_manifest(folder: Path = CHECKPOINT_DIR) -> Path:
    """(Re)write SHA256SUMS for every .safetensors file in `folder`."""
    folder = Path(folder)
    lines = [f"{sha256(p)}  {p.name}\n" for p in sorted(folder.glob("*.safetensors"))]
    manifest = folder / MANIFEST
    manifest.write_text("".join(lines))
    return manifest


def read_manifest(manifest: Path) -> dict[str, str]:
    """File name -> SHA-256 digest from a SHA256SUMS file; CheckpointError when it is malformed."""
    try:
        pairs = [line.split(maxsplit=1) for line in manifest.read_text().splitlines() if line.strip()]
        return {name.strip(): digest for digest, name in pairs}
    except ValueError:  # undecodable text, or a line without a digest and a name
        raise CheckpointError(f"{manifest} is damaged (expected '<sha256>  <file name>' lines): restore it with "
                              f"`git checkout -- checkpoints`, or re-export with `python -m training.export`") from None


def verify(path: Path) -> None:
    """Check `path` against the SHA256SUMS beside it; CheckpointError when it is absent, unlisted or different."""
    manifest = path.parent / MANIFEST
    if not manifest.is_file():
        raise CheckpointError(f"no {MANIFEST} beside {path}, so it cannot be verified: restore the folder with "
                              f"`git checkout -- checkpoints`, or re-export it with `python -m training.export`")
    expected = read_manifest(manifest).get(path.name)
    if expected is None:
        raise CheckpointError(f"{path.name} is not listed in {manifest}: re-export it with "
                              f"`python -m training.export` or restore it with `git checkout -- checkpoints`")
    if sha256(path) != expected:
        raise CheckpointError(f"{path} does not match its checksum in {manifest.name}: the file is damaged or "
                              f"was changed; restore it with `git checkout -- checkpoints` (or `git lfs pull`)")


def read_file(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a checkpoint, verified against the manifest; CheckpointError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    verify(path)
    try:
        tensors, metadata = read_tensors(path, "ikc")
    except (SafetensorError, OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path} is not a readable IKC checkpoint ({error}); restore it with "
                              f"`git checkout -- checkpoints` or re-export it") from None
    if metadata.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format {metadata.get('format')}, this code reads {FORMAT_VERSION}")
    return tensors, metadata


def load_module(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path) -> nn.Module:
    """Fill `module` from the tensors named `prefix.*`; CheckpointError when the shapes do not fit."""
    state = {key: value.float() for key, value in prefixed(tensors, prefix).items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: the {prefix} weights do not fit the architecture in its metadata "
                              f"({str(error).splitlines()[0]})") from None
    return module


def read_pca(tensors: dict[str, torch.Tensor]) -> KernelPCA:
    """The kernel PCA stored in a checkpoint."""
    return KernelPCA.from_tensors(prefixed(tensors, "pca"))
