"""Metrics: PSNR-Y and SSIM-Y with MATLAB conventions, numpy and torch twins agree."""
import math

import numpy as np
import pytest
import torch

import ikc
from ikc.metrics import psnr_y_torch, rgb_to_y


def test_y_channel_uses_bt601_on_16_235():
    assert rgb_to_y(np.zeros((1, 1, 3))) == pytest.approx(16)
    assert rgb_to_y(np.full((1, 1, 3), 255.0)) == pytest.approx(235)


def test_psnr_known_value_for_a_uniform_offset():
    a = np.full((20, 20, 3), 100, np.uint8)
    b = np.full((20, 20, 3), 110, np.uint8)
    y_difference = 219 * 10 / 255  # Y weights sum to 219 on the [16, 235] scale
    assert ikc.psnr_y(a, b) == pytest.approx(20 * math.log10(255 / y_difference), abs=1e-9)
    assert ikc.psnr_y(a, a) == float("inf")


def test_border_is_cropped():
    a = np.zeros((20, 20, 3), np.uint8)
    b = a.copy()
    b[:4] = 255  # differences only within the 4-px border
    assert ikc.psnr_y(a, b, border=4) == float("inf")
    assert ikc.psnr_y(a, b, border=3) < 40


def test_torch_twin_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 32, 24, 3), dtype=np.uint8)
    as_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].double() / 255  # noqa: E731
    assert psnr_y_torch(as_tensor(a), as_tensor(b), 4).item() == pytest.approx(ikc.psnr_y(a, b, 4), abs=1e-9)


def test_ssim_known_value_for_flat_images():
    # flat images have no contrast or structure: SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1)
    a, b = np.full((32, 32, 3), 100, np.uint8), np.full((32, 32, 3), 110, np.uint8)
    ya, yb, c1 = 16 + 219 * 100 / 255, 16 + 219 * 110 / 255, (0.01 * 255) ** 2
    assert ikc.ssim_y(a, b, 4) == pytest.approx((2 * ya * yb + c1) / (ya ** 2 + yb ** 2 + c1), abs=1e-9)
    assert ikc.ssim_y(a, a, 4) == pytest.approx(1.0)


def test_pair_is_psnr_then_ssim():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (2, 24, 20, 3), dtype=np.uint8)
    assert ikc.psnr_ssim_y(a, b, 2) == (ikc.psnr_y(a, b, 2), ikc.ssim_y(a, b, 2))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        ikc.psnr_y(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
