"""The weights in checkpoints/: small, verified, pickle-free, and better than bicubic on a real photo."""
import numpy as np
import pytest

import ikc
from ikc.checkpoint import CHECKPOINT_DIR, MANIFEST, read_file

from .conftest import photo

SHIPPED = ikc.available_scales(CHECKPOINT_DIR)
pytestmark = pytest.mark.skipif(not SHIPPED, reason="no shipped checkpoint in checkpoints/ yet")


@pytest.mark.parametrize("scale", SHIPPED)
def test_shipped_files_are_small_listed_and_described(scale):
    for path in CHECKPOINT_DIR.glob(f"*_x{scale}.safetensors"):
        assert path.stat().st_size < 10 * 1024 * 1024
        assert path.name in (CHECKPOINT_DIR / MANIFEST).read_text()
        _, metadata = read_file(path)
        assert metadata["scale"] == scale and metadata["training"]["steps"] > 0


@pytest.mark.parametrize("scale", SHIPPED)
@pytest.mark.slow
def test_ikc_restores_a_blurred_photo_better_than_bicubic(scale):
    model = ikc.load(scale, require_blind=False)
    hr = ikc.modcrop(photo("astronaut")[100:292, 140:332], scale)
    width = {2: 1.2, 3: 1.8, 4: 2.6}[scale]
    lr = ikc.degrade_image(hr, ikc.gaussian_kernel(width), scale)
    bicubic = ikc.psnr_y(ikc.upscale_bicubic(lr, scale), hr, scale)
    given = ikc.psnr_y(model.super_resolve(lr, kernel=ikc.gaussian_kernel(width)), hr, scale)
    assert given > bicubic + 0.5
    if model.blind:
        blind = ikc.psnr_y(model.run(lr, 7, render="last")[-1].sr, hr, scale)
        assert blind > bicubic + 0.5


@pytest.mark.parametrize("scale", SHIPPED)
@pytest.mark.slow
def test_tiled_output_equals_untiled_output_with_real_weights(scale):
    lr = ikc.degrade_image(ikc.modcrop(photo("coffee")[:288, :288], scale), ikc.gaussian_kernel(1.5), scale)
    code = np.zeros(ikc.CODE_LENGTH, np.float32)
    whole = ikc.load(scale, require_blind=False, tile_pixels=10 ** 9).render(lr, code).astype(int)
    tiled = ikc.load(scale, require_blind=False, tile_pixels=64 * 64).render(lr, code).astype(int)
    border = 4 * scale
    assert np.abs(whole - tiled)[border:-border, border:-border].max() <= 1


@pytest.mark.parametrize("scale", SHIPPED)
@pytest.mark.slow
def test_the_corrector_reads_its_sr_image(scale):
    """Told the same kernel, the Corrector must propose a wider one for a photo that was blurred more:
    a Corrector that ignores its SR image gives both the same update."""
    model = ikc.load(scale, require_blind=False)
    if not model.blind:
        pytest.skip(f"no Predictor/Corrector for x{scale}")
    low, high = float(ikc.GAUSSIAN8[scale][0]), float(ikc.GAUSSIAN8[scale][-1])
    told = model.code_for(ikc.gaussian_kernel((low + high) / 2))
    hr = ikc.modcrop(photo("astronaut")[100:356, 140:396], scale)
    corrected = [model.run(ikc.degrade_image(hr, ikc.gaussian_kernel(width), scale), 1, init_code=told,
                           render="none")[-1].kernel_width for width in (low, high)]
    assert corrected[1] - corrected[0] > 0.1 * (high - low)


JPEG_ESTIMATED = [s for s in SHIPPED if (CHECKPOINT_DIR / f"ikc_x{s}_jpeg.safetensors").is_file()]


@pytest.mark.parametrize("scale", JPEG_ESTIMATED)
@pytest.mark.slow
def test_the_jpeg_predictor_reads_a_jpeg_kernel_closer_than_the_lossless_one(scale):
    model = ikc.load(scale)
    jpeg = model.for_input(70)
    assert jpeg.uses_jpeg_estimators and model.jpeg_estimators_range == (30, 95)
    width = {2: 1.2, 3: 1.85, 4: 2.6}[scale]
    errors = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        lr = ikc.degrade_image(photo(name)[:288, :288], ikc.gaussian_kernel(width), scale, jpeg_quality=70)
        errors.append([abs(m.run(lr, 0, render="none")[0].kernel_width - width) for m in (model, jpeg)])
    lossless_error, jpeg_error = np.mean(errors, axis=0)
    assert jpeg_error < lossless_error - 0.05  # block edges no longer read as a sharp kernel
