"""The kernel code: reproducible PCA, encode/decode, width estimate, noise entry."""
import numpy as np
import pytest

import ikc
from ikc.kernel_code import (
    CODE_LENGTH,
    decode_noise,
    mean_radius_gaussian_code,
    mean_radius_width,
    nearest_gaussian_code,
    nearest_gaussian_width,
)


@pytest.fixture(scope="module")
def pca():
    return ikc.fit_pca(count=3000, seed=0)


def test_pca_is_reproducible_and_shaped(pca):
    again = ikc.fit_pca(count=3000, seed=0)
    assert pca.matrix.shape == (441, 10) and pca.mean.shape == (441,) and pca.scale.shape == (10,)
    assert np.array_equal(pca.matrix, again.matrix) and np.array_equal(pca.mean, again.mean)
    assert not np.allclose(ikc.fit_pca(count=3000, seed=1).mean, pca.mean, atol=0, rtol=0)


@pytest.mark.parametrize("sigma", [0.3, 1.0, 1.8, 2.6, 3.2, 4.0])
def test_code_round_trip_and_width_estimate(pca, sigma):
    kernel = ikc.gaussian_kernel(sigma)
    code = ikc.encode(pca, kernel, noise_sigma=12.5)
    assert code.shape == (CODE_LENGTH,)
    decoded = ikc.decode_kernel(pca, code)
    assert np.abs(decoded - kernel).max() < 2e-4
    assert ikc.estimate_width(decoded) == pytest.approx(sigma, abs=0.02)
    assert decode_noise(code) == pytest.approx(12.5)


def test_batched_encode_and_decode(pca):
    kernels = np.stack([ikc.gaussian_kernel(s) for s in (1.0, 2.0, 3.0)])
    codes = ikc.encode(pca, kernels, np.array([0.0, 5.0, 25.0]))
    assert codes.shape == (3, CODE_LENGTH)
    assert ikc.estimate_width(ikc.decode_kernel(pca, codes)).tolist() == pytest.approx([1.0, 2.0, 3.0], abs=0.02)


def test_decoded_kernels_are_valid_even_for_wild_codes(pca):
    wild = np.random.default_rng(0).normal(0, 5, (4, CODE_LENGTH)).astype(np.float32)
    kernels = ikc.decode_kernel(pca, wild)
    assert np.all(kernels >= 0)
    assert kernels.sum(axis=(1, 2)) == pytest.approx(np.ones(4), abs=1e-5)
    assert np.all(decode_noise(wild) >= 0)


def test_nearest_gaussian_code_keeps_a_gaussian_and_moves_an_off_curve_code_onto_one(pca):
    gaussian = ikc.encode(pca, ikc.gaussian_kernel(2.3), noise_sigma=5.0)
    assert np.allclose(nearest_gaussian_code(pca, gaussian), gaussian, atol=1e-5)
    off_curve = gaussian + np.random.default_rng(1).normal(0, 0.3, (3, CODE_LENGTH)).astype(np.float32)
    projected = nearest_gaussian_code(pca, off_curve)
    widths = nearest_gaussian_width(ikc.decode_kernel(pca, off_curve))
    expected = ikc.encode(pca, np.stack([ikc.gaussian_kernel(float(w)) for w in widths]), off_curve[:, -1] * 25)
    assert projected.shape == (3, CODE_LENGTH) and np.allclose(projected, expected, atol=1e-5)
    assert not np.allclose(projected[:, :-1], off_curve[:, :-1], atol=0.05)  # it did move
    assert np.array_equal(projected[:, -1], off_curve[:, -1])  # the noise entry is kept


def test_the_width_of_a_kernel_is_the_gaussian_width_that_blurs_as_far():
    gaussians = np.stack([ikc.gaussian_kernel(s) for s in (0.2, 0.5, 1.35, 3.2, 4.0)])
    assert ikc.estimate_width(gaussians).tolist() == pytest.approx([0.2, 0.5, 1.35, 3.2, 4.0], abs=0.01)
    assert ikc.estimate_width(np.roll(ikc.gaussian_kernel(1.5), 2, axis=1)) == pytest.approx(1.5, abs=0.01)
    assert ikc.estimate_width(ikc.anisotropic_gaussian_kernel(1.0, 2.0, 30)) == pytest.approx(np.sqrt(2.5), abs=0.01)
    # a sharp core with a wide skirt: the nearest Gaussian in L2 follows the core, the width how far it blurs
    mixture = 0.6 * ikc.gaussian_kernel(0.8) + 0.4 * ikc.gaussian_kernel(2.5)
    assert nearest_gaussian_width(mixture) < 1.3
    assert ikc.estimate_width(mixture) == pytest.approx(np.sqrt(0.6 * 0.8 ** 2 + 0.4 * 2.5 ** 2), abs=0.02)


def test_a_blend_of_gaussians_reads_by_its_mean_radius_as_the_mean_of_their_widths(pca):
    gaussians = np.stack([ikc.gaussian_kernel(s) for s in (0.3, 0.7, 1.8, 3.2)])
    assert mean_radius_width(gaussians).tolist() == pytest.approx([0.3, 0.7, 1.8, 3.2], abs=0.01)
    blend = 0.5 * ikc.gaussian_kernel(0.8) + 0.5 * ikc.gaussian_kernel(1.8)
    assert mean_radius_width(blend) == pytest.approx(1.3, abs=0.03)  # the L2 match reads its peak, the std its RMS
    assert nearest_gaussian_width(blend) < 1.2 and ikc.estimate_width(blend) > 1.35
    code = ikc.encode(pca, blend, noise_sigma=5.0)
    moved = mean_radius_gaussian_code(pca, code)
    width = float(mean_radius_width(ikc.decode_kernel(pca, code)))
    assert np.allclose(moved, ikc.encode(pca, ikc.gaussian_kernel(width), noise_sigma=5.0), atol=1e-5)
    gaussian = ikc.encode(pca, ikc.gaussian_kernel(2.3))
    assert np.allclose(mean_radius_gaussian_code(pca, gaussian), gaussian, atol=1e-5)
