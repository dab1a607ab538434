"""Degradation: kernels, blur, MATLAB bicubic (checked against independent values), noise."""
import numpy as np
import pytest
import torch
from PIL import Image

import ikc
from ikc.degradation import add_noise


def test_imresize_matches_hand_computed_matlab_values():
    # MATLAB: imresize([1 2 3 4], [1 8]) with a = -0.5 cubic and symmetric borders, by hand
    row = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]])
    expected = [0.90625, 1.1796875, 1.7265625, 2.25, 2.75, 3.2734375, 3.8203125, 4.09375]
    assert ikc.imresize(row, size=(1, 8))[0, 0, 0].tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 3, 4])
def test_imresize_interior_matches_pillow_float_bicubic(scale):
    # Pillow's float bicubic uses the same a = -0.5 kernel and antialiasing; only borders differ
    image = np.random.default_rng(0).random((96, 120)).astype(np.float32)
    ours = ikc.imresize(torch.from_numpy(image)[None, None], scale)[0, 0].numpy()
    height, width = ours.shape
    assert (height, width) == (round(96 * scale), round(120 * scale))
    pillow = np.asarray(Image.fromarray(image, mode="F").resize((width, height), Image.BICUBIC))
    margin = 4 if scale < 1 else 12
    assert np.abs(ours - pillow)[margin:-margin, margin:-margin].max() < 1e-5


def test_blur_and_downsample_keep_a_constant_image_constant():
    hr = torch.full((2, 3, 48, 40), 0.4)
    kernels = torch.from_numpy(np.stack([ikc.gaussian_kernel(0.7), ikc.anisotropic_gaussian_kernel(1, 3, 30)]))
    lr = ikc.degrade(hr, kernels, 4)
    assert lr.shape == (2, 3, 12, 10)
    assert torch.all(lr == round(0.4 * 255) / 255)


def test_kernels_are_normalised_and_shaped():
    for kernel in (ikc.gaussian_kernel(0.2), ikc.gaussian_kernel(4.0), ikc.anisotropic_gaussian_kernel(1, 3, 45)):
        assert kernel.shape == (21, 21)
        assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.allclose(kernel, kernel[::-1, ::-1], atol=1e-7)  # point-symmetric
    wide_x = ikc.anisotropic_gaussian_kernel(3, 1, 0)
    assert np.allclose(ikc.anisotropic_gaussian_kernel(1, 3, 90), wide_x, atol=1e-6)
    assert wide_x[10].sum() > wide_x[:, 10].sum()  # spread along x, so the centre row holds more mass


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_kernel_rejects_bad_width(bad):
    with pytest.raises(ValueError, match="positive and finite"):
        ikc.gaussian_kernel(bad)


def test_delta_kernel_blur_is_identity():
    image = torch.rand(1, 3, 30, 30)
    delta = np.zeros((21, 21), np.float32)
    delta[10, 10] = 1
    assert torch.allclose(ikc.blur(image, torch.from_numpy(delta)), image, atol=1e-6)


def test_noise_has_the_requested_strength_per_sample():
    images = torch.zeros(2, 3, 200, 200)
    noisy = add_noise(images, torch.tensor([0.0, 25.0]), torch.Generator().manual_seed(0))
    assert noisy[0].abs().max() == 0
    assert noisy[1].std().item() * 255 == pytest.approx(25, rel=0.02)


def test_degrade_refuses_unmodcropped_input_and_modcrop_fixes_it():
    with pytest.raises(ValueError, match="modcrop"):
        ikc.degrade(torch.rand(1, 3, 30, 30), torch.from_numpy(ikc.gaussian_kernel(1.0)), 4)
    pixels = np.zeros((30, 31, 3), np.uint8)
    assert ikc.modcrop(pixels, 4).shape == (28, 28, 3)
    assert ikc.degrade_image(pixels, ikc.gaussian_kernel(1.0), 4).shape == (7, 7, 3)
