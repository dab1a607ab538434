"""Training pairs made on the fly: random HR crops, random kernels and noise, degraded with `ikc`."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ikc.archs import compression_level
from ikc.degradation import degrade, gaussian_kernel
from ikc.imageio import IMAGE_SUFFIXES, load_image
from ikc.kernel_code import KernelPCA, encode


@dataclass(frozen=True)
class DegradationRange:
    """Where training kernels and noise are drawn from."""

    sigma_min: float = 0.2
    sigma_max: float = 4.0
    noise_max: float = 25.0
    clean_fraction: float = 0.5
    jpeg_fraction: float = 0.0  # share of LR images saved as JPEG (the last step of the degradation)
    jpeg_min: int = 30
    jpeg_max: int = 95


@dataclass
class Batch:
    lr: torch.Tensor  # (B, 3, h, w) in [0, 1], on the sampler's device
    hr: torch.Tensor  # (B, 3, h*s, w*s), on the sampler's device
    code: torch.Tensor  # (B, CODE_LENGTH), the true kernel code, on the sampler's device
    sigma: torch.Tensor  # (B,), kernel widths, on the CPU
    noise: torch.Tensor  # (B,), noise sigma on the 0-255 scale, on the CPU
    compression: torch.Tensor  # (B,), each LR image's compression_level (0: lossless), on the sampler's device

    def followed_by(self, other: Batch) -> Batch:
        """This batch's entries, then `other`'s."""
        return Batch(*(torch.cat([a, b]) for a, b in zip(
            (self.lr, self.hr, self.code, self.sigma, self.noise, self.compression),
            (other.lr, other.hr, other.code, other.sigma, other.noise, other.compression))))


def list_images(folder: Path) -> list[Path]:
    """Image files below `folder`, sorted, so that every run sees the same order."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def split_holdout(paths: list[Path], count: int) -> tuple[list[Path], list[Path]]:
    """Split off `count` images chosen by a hash of their names: (train, held out), stable across runs.

    The hash reads each name as the PNG that prepare_data writes, so a packed copy (`x.jpg`) holds out the same
    photos as the originals (`x.png`): hashing the JPEG names held out four other photos and trained on these.
    """
    ranked = sorted(paths, key=lambda p: hashlib.sha256(p.with_suffix(".png").name.encode()).hexdigest())
    held = set(ranked[:count])
    return [p for p in paths if p not in held], [p for p in paths if p in held]


def texture(image: np.ndarray) -> float:
    """Mean absolute grey-level gradient of an (H, W, 3) uint8 image: how much edge it has to show blur."""
    grey = image.astype(np.float32).mean(-1)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


class PatchSampler:
    """Keeps the HR photos in memory and draws degraded training batches from them (degraded on `device`)."""

    def __init__(self, paths: list[Path], pca: KernelPCA, scale: int, lr_patch: int,
                 degradations: DegradationRange, seed: int = 0, device: str | torch.device = "cpu"):
        hr_patch = lr_patch * scale
        self.images = [img for img in (load_image(p) for p in paths) if min(img.shape[:2]) >= hr_patch]
        if not self.images:
            raise ValueError(f"no training image is at least {hr_patch} px on its short side")
        weights = np.array([img.shape[0] * img.shape[1] for img in self.images], np.float64)
        self.weights = weights / weights.sum()  # larger photos give more patches
        self.pca, self.scale, self.hr_patch, self.degradations = pca, scale, hr_patch, degradations
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)

    def _crop(self) -> np.ndarray:
        image = self.images[self.rng.choice(len(self.images), p=self.weights)]
        top = self.rng.integers(0, image.shape[0] - self.hr_patch + 1)
        left = self.rng.integers(0, image.shape[1] - self.hr_patch + 1)
        patch = image[top:top + self.hr_patch, left:left + self.hr_patch]
        if self.rng.random() < 0.5:
            patch = patch[:, ::-1]
        return np.rot90(patch, self.rng.integers(4))

    def sample(self, batch_size: int, texture_pick: int = 1) -> Batch:
        """A batch of HR crops (flipped, rotated), blurred with random kernels, noised, downsampled.

        With texture_pick k > 1, the batch keeps the 1/k most textured of k x batch_size crops, like the
        textured windows the Predictor and Corrector are shown at inference.
        """
        crops = [self._crop() for _ in range(batch_size * texture_pick)]
        if texture_pick > 1:
            crops = [crops[i] for i in np.argsort([-texture(crop) for crop in crops], kind="stable")[:batch_size]]
        hr = torch.from_numpy(np.stack(crops)).to(self.device)
        hr = hr.permute(0, 3, 1, 2).float() / 255
        d = self.degradations
        sigma = self.rng.uniform(d.sigma_min, d.sigma_max, batch_size)
        noise = np.where(self.rng.random(batch_size) < d.clean_fraction, 0.0,
                         self.rng.uniform(0, d.noise_max, batch_size))
        kernels = np.stack([gaussian_kernel(s) for s in sigma])
        qualities = [None] * batch_size  # drawn only when asked for, so runs without JPEG draw as before
        if d.jpeg_fraction > 0:
            qualities = [int(q) if compressed else None for q, compressed in
                         zip(self.rng.integers(d.jpeg_min, d.jpeg_max, batch_size, endpoint=True),
                             self.rng.random(batch_size) < d.jpeg_fraction)]
        lr = degrade(hr, torch.from_numpy(kernels), self.scale, torch.from_numpy(noise).float(), self.generator,
                     qualities)
        code = torch.from_numpy(encode(self.pca, kernels, noise)).to(self.device)
        compression = torch.tensor([compression_level(q) for q in qualities], device=self.device)
        return Batch(lr, hr, code, torch.from_numpy(sigma).float(), torch.from_numpy(noise).float(), compression)
