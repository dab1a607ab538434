"""PSNR and SSIM on the BT.601 Y channel with a border crop, as in MATLAB-based SR papers.

numpy functions take (H, W, 3) images in [0, 255] (uint8 or float); the torch twin takes
(B, 3, H, W) batches in [0, 1] and returns one PSNR per image.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image in [0, 255], on the [16, 235] scale, as float64 (MATLAB rgb2ycbcr)."""
    rgb = np.asarray(image, np.float64) / 255
    return 16 + rgb @ np.array(_Y_WEIGHTS)


def rgb_to_y_torch(images: torch.Tensor) -> torch.Tensor:
    """Torch twin of rgb_to_y for (B, 3, H, W) batches in [0, 1]; returns (B, H, W) on [16, 235]."""
    weights = torch.tensor(_Y_WEIGHTS, dtype=images.dtype, device=images.device)
    return 16 + torch.einsum("bchw,c->bhw", images, weights)


def _crop(image: np.ndarray, border: int) -> np.ndarray:
    return image[border:-border, border:-border] if border > 0 else image


def psnr_y(restored: np.ndarray, reference: np.ndarray, border: int = 0) -> float:
    """PSNR in dB between the Y channels of two same-size RGB images, `border` px cropped."""
    if restored.shape != reference.shape:
        raise ValueError(f"image shapes differ: {restored.shape} vs {reference.shape}")
    mse = np.mean((_crop(rgb_to_y(restored), border) - _crop(rgb_to_y(reference), border)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def psnr_y_torch(restored: torch.Tensor, reference: torch.Tensor, border: int = 0) -> torch.Tensor:
    """Torch twin of psnr_y for (B, 3, H, W) batches in [0, 1]; one value per image."""
    difference = rgb_to_y_torch(restored.double()) - rgb_to_y_torch(reference.double())
    if border > 0:
        difference = difference[:, border:-border, border:-border]
    mse = (difference ** 2).mean(dim=(1, 2))
    return 10 * torch.log10(255.0 ** 2 / mse)


def ssim_y(restored: np.ndarray, reference: np.ndarray, border: int = 0) -> float:
    """SSIM between Y channels: 11x11 Gaussian window, sigma 1.5, data range 255 (MATLAB's ssim)."""
    if restored.shape != reference.shape:
        raise ValueError(f"image shapes differ: {restored.shape} vs {reference.shape}")
    return float(structural_similarity(
        _crop(rgb_to_y(restored), border), _crop(rgb_to_y(reference), border),
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0))


def psnr_ssim_y(restored: np.ndarray, reference: np.ndarray, border: int = 0) -> tuple[float, float]:
    """(PSNR-Y, SSIM-Y) of `restored` against `reference`, `border` px cropped: the pair SR results report."""
    return psnr_y(restored, reference, border), ssim_y(restored, reference, border)
