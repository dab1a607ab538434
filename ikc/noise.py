"""The noise level of an LR image, read from its flattest regions.

The Predictor reads blur from the most textured windows, where noise is hardest to see (measured: it
estimated 5 for noise 10). Here the image is high-passed with a second-difference filter that removes
locally linear shading (Immerkaer 1996), and the noise is the spread of that residual in the flattest
8x8 blocks: the 10th percentile of the block RMS, scaled to be unbiased for white noise. Blocks holding a
clipped pixel (0 or 255) are left out, since clipping hides noise in dark and bright areas.
"""
from __future__ import annotations

import numpy as np

BLOCK = 8
PERCENTILE = 10.0
# the 10th percentile of the 8x8-block RMS of white noise after high_pass, in units of its sigma (measured on
# 2048x2048x3 samples; lower than a chi distribution's, since neighbouring residuals are correlated)
PERCENTILE_RATIO = 0.879
QUANTISATION_SIGMA = 0.29  # rounding to 8 bit adds uniform noise of std 1/sqrt(12) levels


def high_pass(pixels: np.ndarray) -> np.ndarray:
    """Second differences along both axes, /6 so white noise keeps its std: (H-2, W-2, C) float64."""
    x = pixels.astype(np.float64)
    rows = x[:-2] - 2 * x[1:-1] + x[2:]
    return (rows[:, :-2] - 2 * rows[:, 1:-1] + rows[:, 2:]) / 6.0


def blocks(image: np.ndarray, block: int) -> np.ndarray:
    """The whole block x block tiles of an (H, W, C) array, as (rows, block, cols, block, C)."""
    height, width = image.shape[0] // block * block, image.shape[1] // block * block
    return image[:height, :width].reshape(height // block, block, width // block, block, -1)


def estimate_noise(pixels: np.ndarray) -> float:
    """Noise sigma (0-255 scale) of an (H, W, 3) uint8 image with white Gaussian noise; about 0.3-0.5 on clean
    photos (measured on held-out photos; see training/LOG.md)."""
    residual = high_pass(pixels)
    block = max(1, min(BLOCK, *residual.shape[:2]))
    rms = np.sqrt((blocks(residual, block) ** 2).mean(axis=(1, 3, 4))).ravel()
    inner = blocks(pixels[1:-1, 1:-1], block)  # the pixels each residual block was computed at
    clipped = ((inner == 0) | (inner == 255)).any(axis=(1, 3, 4)).ravel()
    if (~clipped).sum() >= BLOCK:
        rms = rms[~clipped]
    unbiased = np.percentile(rms, PERCENTILE) / PERCENTILE_RATIO
    return float(np.sqrt(max(unbiased ** 2 - QUANTISATION_SIGMA ** 2, 0.0)))
