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


def test_the_jpeg_step_is_pillows_encoder_applied_last_and_optional():
    hr = np.asarray(Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), np.uint8)).resize((96, 96)))
    kernel = ikc.gaussian_kernel(1.5)
    lossless = ikc.degrade_image(hr, kernel, 4, 5.0, seed=3)
    compressed = ikc.degrade_image(hr, kernel, 4, 5.0, seed=3, jpeg_quality=70)
    assert np.array_equal(compressed, ikc.jpeg_compress(lossless, 70)), "JPEG after blur, shrink, noise and rounding"
    assert not np.array_equal(compressed, lossless)
    assert np.array_equal(ikc.degrade_image(hr, kernel, 4, 5.0, seed=3, jpeg_quality=None), lossless)
    assert np.abs(ikc.jpeg_compress(lossless, 95).astype(int) - lossless).mean() < \
        np.abs(ikc.jpeg_compress(lossless, 30).astype(int) - lossless).mean(), "lower quality loses more"


def test_a_batch_is_compressed_per_image_at_its_own_quality():
    hr = torch.rand(3, 3, 64, 64)
    kernels = torch.from_numpy(np.stack([ikc.gaussian_kernel(1.0)] * 3))
    plain = ikc.degrade(hr, kernels, 2)
    mixed = ikc.degrade(hr, kernels, 2, jpeg_quality=[None, 50, 90])
    assert torch.equal(mixed[0], plain[0])
    for index, quality in ((1, 50), (2, 90)):
        pixels = (plain[index] * 255).round().byte().permute(1, 2, 0).numpy()
        expected = torch.from_numpy(ikc.jpeg_compress(pixels, quality)).permute(2, 0, 1).float() / 255
        assert torch.equal(mixed[index], expected)


@pytest.mark.parametrize("bad", [0, 101, 70.5, "high", True, float("nan")])
def test_a_bad_jpeg_quality_is_refused_with_the_range(bad):
    with pytest.raises(ValueError, match="JPEG quality must be a whole number from 1 to 100"):
        ikc.degrade_image(np.zeros((32, 32, 3), np.uint8), ikc.gaussian_kernel(1.0), 2, jpeg_quality=bad)


@pytest.mark.parametrize("quality", [30, 70, 90, 95])
def test_the_quality_of_a_jpeg_file_is_read_from_its_tables(quality):
    import io
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buffer, format="JPEG", quality=quality)
    image = ikc.read_image(buffer.getvalue())
    assert image.jpeg_quality == quality and f"JPEG, quality about {quality}" in image.notes
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buffer, format="PNG")
    assert ikc.read_image(buffer.getvalue()).jpeg_quality is None


def test_block_noise_gives_each_8x8_block_its_own_level_within_the_range():
    flat = np.full((512, 512, 3), 128, np.uint8)
    lr = ikc.degrade_image(flat, ikc.gaussian_kernel(1.0), 4, 2.0, seed=1, noise_sigma_max=60.0).astype(float)
    levels = lr[..., 0].reshape(16, 8, 16, 8).std(axis=(1, 3))  # one noise level per 8x8 block
    assert levels.min() < 12 and levels.max() > 45 and levels.max() < 75
    assert np.array_equal(lr, ikc.degrade_image(flat, ikc.gaussian_kernel(1.0), 4, 2.0, seed=1, noise_sigma_max=60.0))
    with pytest.raises(ValueError, match="the noise range must go up"):
        ikc.degrade_image(flat, ikc.gaussian_kernel(1.0), 4, 20.0, noise_sigma_max=10.0)
