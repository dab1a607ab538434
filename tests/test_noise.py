"""The noise level read from an image's flat regions (ikc.noise)."""
import numpy as np
import pytest

import ikc
from ikc.noise import estimate_noise

from .conftest import photo


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_noise_estimate_follows_the_added_noise(name):
    hr = ikc.modcrop(photo(name), 4)
    for noise in (0.0, 5.0, 10.0, 20.0):
        lr = ikc.degrade_image(hr, ikc.gaussian_kernel(2.2), 4, noise, seed=1)
        estimate = estimate_noise(lr)
        assert abs(estimate - noise) < (1.0 if noise == 0 else 0.15 * noise + 0.5), (noise, estimate)


def test_pure_noise_on_a_flat_grey_image_is_measured_exactly():
    rng = np.random.default_rng(0)
    pixels = np.clip(np.round(128 + 12 * rng.standard_normal((96, 96, 3))), 0, 255).astype(np.uint8)
    assert estimate_noise(pixels) == pytest.approx(12, abs=0.6)


def test_clipped_blocks_do_not_hide_the_noise():
    rng = np.random.default_rng(0)
    base = np.full((96, 96, 3), 128.0)
    base[:64] = 0.0  # two thirds black: clipping removes half the noise there
    pixels = np.clip(np.round(base + 10 * rng.standard_normal(base.shape)), 0, 255).astype(np.uint8)
    assert estimate_noise(pixels) == pytest.approx(10, abs=0.8)


def test_tiny_images_still_get_an_estimate():
    pixels = np.full((8, 8, 3), 100, np.uint8)
    assert estimate_noise(pixels) == 0.0


def test_noise_level_tool_compares_the_predictor_with_the_image_estimate(tiny_checkpoints):
    from evaluation.noise_level import noise_errors
    predictor, loop = (ikc.load(4, tiny_checkpoints, noise_from_image=flag) for flag in (False, True))
    errors = noise_errors(predictor, loop, [ikc.modcrop(photo("coffee"), 4)], 4, 2.0, [0.0, 10.0])
    assert set(errors) == {"predictor", "image", "loop"} and set(errors["image"]) == {0.0, 10.0}
    assert errors["image"][10.0][1] < 1.5 and errors["image"][0.0][0] < 1.0
    assert errors["loop"][10.0] == pytest.approx(errors["image"][10.0], abs=1e-4)  # clear noise: the image's
    assert errors["loop"][0.0] == pytest.approx(errors["predictor"][0.0], abs=1e-4)  # clean: the Predictor's
