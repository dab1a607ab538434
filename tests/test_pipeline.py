"""The correction loop API and checkpoint loading, on tiny checkpoints trained by the fixture."""
import shutil

import numpy as np
import pytest
import torch

import ikc
from ikc.checkpoint import write_manifest
from ikc.kernel_code import mean_radius_width, nearest_gaussian_width
from ikc.pipeline import available_cpus, quota_cpus, textured_windows
from training import export

from .conftest import photo, with_jpeg_estimators


@pytest.fixture(scope="module")
def model(tiny_checkpoints):
    return ikc.load(4, tiny_checkpoints)


@pytest.fixture(scope="module")
def lr_image():
    return ikc.degrade_image(photo("coffee")[:160, :200], ikc.gaussian_kernel(2.0), 4)


def test_steps_stream_every_iteration_with_kernel_and_image(model, lr_image):
    seen = []
    steps = list(model.steps(lr_image, iterations=3, on_step=seen.append))
    assert [s.index for s in steps] == [0, 1, 2, 3] and seen == steps
    for step in steps:
        assert step.sr.shape == (160, 200, 3) and step.sr.dtype == np.uint8
        assert step.code.shape == (ikc.CODE_LENGTH,) and step.kernel.shape == (21, 21)
        assert step.kernel.sum() == pytest.approx(1, abs=1e-4)
        assert 0.1 <= step.kernel_width <= 8 and step.noise_sigma >= 0
    assert not np.array_equal(steps[0].code, steps[3].code)  # the Corrector moved the code


def test_render_modes_and_lazy_render(model, lr_image):
    last_only = model.run(lr_image, 2, render="last")
    assert [s.sr is None for s in last_only] == [True, True, False]
    lazy = model.run(lr_image, 2, render="none")
    assert all(s.sr is None for s in lazy)
    assert np.array_equal(model.render(lr_image, lazy[-1].code), last_only[-1].sr)


def test_estimation_on_a_crop_equals_the_full_loop_for_small_images(tiny_checkpoints, lr_image):
    full = ikc.load(4, tiny_checkpoints, estimation_crop=None).run(lr_image, 2)
    cropped = ikc.load(4, tiny_checkpoints, estimation_crop=64).run(lr_image[:60, :60], 2)
    whole = ikc.load(4, tiny_checkpoints, estimation_crop=None).run(lr_image[:60, :60], 2)
    assert np.array_equal(cropped[-1].sr, whole[-1].sr)
    assert full[-1].sr.shape == (160, 200, 3)


def test_tiled_render_matches_untiled_away_from_borders(tiny_checkpoints, lr_image):
    untiled = ikc.load(4, tiny_checkpoints, tile_pixels=10**9).render(lr_image, np.zeros(ikc.CODE_LENGTH, np.float32))
    tiled = ikc.load(4, tiny_checkpoints, tile_pixels=32 * 32, tile_overlap=12).render(
        lr_image, np.zeros(ikc.CODE_LENGTH, np.float32))
    assert tiled.shape == untiled.shape
    assert np.abs(tiled.astype(int) - untiled.astype(int)).max() <= 1


def test_non_blind_super_resolve_with_a_user_kernel(model, lr_image):
    sr = model.super_resolve(lr_image, kernel=ikc.gaussian_kernel(2.0))
    assert sr.shape == (160, 200, 3)
    start = model.code_for(ikc.gaussian_kernel(2.0))
    steps = model.run(lr_image, 1, init_code=start)
    assert np.allclose(steps[0].code, start) and np.array_equal(steps[0].sr, sr)


@pytest.mark.parametrize("iterations", [-1, 51, 2.5])
def test_bad_iteration_counts_are_refused(model, lr_image, iterations):
    with pytest.raises(ValueError, match="iterations must be"):
        model.run(lr_image, iterations)


def test_bad_images_are_refused(model):
    with pytest.raises(ValueError, match="at least 16x16"):
        model.run(np.zeros((4, 30, 3), np.uint8), 1)
    with pytest.raises(ValueError, match="uint8"):
        model.run(np.zeros((30, 30, 3), np.float32), 1)


def test_missing_scale_says_what_exists_and_what_to_do(tiny_checkpoints):
    with pytest.raises(ikc.CheckpointError, match=r"no checkpoint for x2 .*available: x4.*training.train_sftmd"):
        ikc.load(2, tiny_checkpoints)
    assert ikc.available_scales(tiny_checkpoints) == [4]


def test_tampered_checkpoint_fails_its_checksum(tiny_checkpoints, tmp_path):
    folder = shutil.copytree(tiny_checkpoints, tmp_path / "copy")
    path = folder / "sftmd_x4.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ikc.CheckpointError, match="does not match its checksum"):
        ikc.load(4, folder)


def test_truncated_checkpoint_is_reported_clearly(tiny_checkpoints, tmp_path):
    folder = shutil.copytree(tiny_checkpoints, tmp_path / "copy")
    path = folder / "ikc_x4.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    write_manifest(folder)  # a consistent manifest: the file itself must be found unreadable
    with pytest.raises(ikc.CheckpointError, match="not a readable IKC checkpoint"):
        ikc.load(4, folder)


def test_sftmd_only_allows_non_blind_use(tiny_checkpoints, tmp_path, lr_image):
    folder = shutil.copytree(tiny_checkpoints, tmp_path / "copy")
    (folder / "ikc_x4.safetensors").unlink()
    write_manifest(folder)
    with pytest.raises(ikc.CheckpointError, match="Predictor/Corrector"):
        ikc.load(4, folder)
    model = ikc.load(4, folder, require_blind=False)
    assert model.super_resolve(lr_image, kernel=ikc.gaussian_kernel(1.0)).shape == (160, 200, 3)
    with pytest.raises(ikc.CheckpointError, match="blind SR is not available"):
        model.run(lr_image, 1)


def test_checkpoints_hold_metadata_and_the_pca(model):
    assert model.metadata["sftmd"]["nf"] == 8 and model.metadata["scale"] == 4
    assert model.kernel_range == (0.2, 4.0) and model.noise_range == (0.0, 25.0)
    assert model.metadata["training"]["steps"] == 3
    assert model.pca.matrix.shape == (441, 10)


@pytest.mark.parametrize("line, cpus", [("max 100000", None), ("200000 100000", 2.0), ("150000 100000\n", 1.5)])
def test_container_cpu_quota_is_read(line, cpus):
    assert quota_cpus(line) == cpus


def test_thread_setting_from_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("IKC_THREADS", "1")
        assert ikc.use_available_cpus() == 1
        monkeypatch.setenv("IKC_THREADS", "many")
        with pytest.raises(ValueError, match="IKC_THREADS must be a whole number"):
            ikc.use_available_cpus()
        monkeypatch.delenv("IKC_THREADS")
        assert ikc.use_available_cpus() == available_cpus() >= 1
    finally:
        torch.set_num_threads(before)


def test_textured_windows_find_the_detail_best_first_without_overlap():
    lr = torch.zeros(1, 3, 100, 120)
    checker = (torch.arange(20)[:, None] + torch.arange(20)[None]) % 2
    lr[..., 60:80, 10:30] = checker.float()  # strong texture
    lr[..., 5:25, 80:100] = 0.3 * checker.float()  # weaker texture
    corners = textured_windows(lr, 24, 3)
    assert len(corners) == 3
    (top_a, left_a), (top_b, left_b) = corners[:2]
    assert top_a <= 60 and top_a + 24 >= 80 and left_a <= 10 and left_a + 24 >= 30
    assert top_b <= 5 and top_b + 24 >= 25 and left_b <= 80 and left_b + 24 >= 100
    for i, (y1, x1) in enumerate(corners):
        for y2, x2 in corners[i + 1:]:
            assert abs(y1 - y2) >= 24 or abs(x1 - x2) >= 24
    assert textured_windows(lr[..., :20, :24], 24, 3) == [(0, 0)]


def test_windows_at_a_quantile_have_typical_texture():
    lr = torch.zeros(1, 3, 24, 120)
    checker = (torch.arange(24)[:, None] + torch.arange(24)[None]) % 2
    for strip, amplitude in enumerate([0.1, 0.2, 0.3, 0.4, 0.5]):  # texture grows from left to right
        lr[..., 24 * strip:24 * strip + 24] = amplitude * checker.float()
    def strip(quantile: float) -> int:  # the strip holding the centre of the window picked first
        (_, left), = textured_windows(lr, 24, 1, quantile)
        return (left + 12) // 24

    assert [strip(1.0), strip(0.5), strip(0.0)] == [4, 2, 0]
    assert textured_windows(lr, 24, 1) == textured_windows(lr, 24, 1, quantile=1.0)
    assert len(textured_windows(lr, 24, 4, quantile=0.5)) == 4


def test_corrector_reads_the_quantile_windows_and_the_predictor_the_textured_ones(tiny_checkpoints, lr_image):
    model = ikc.load(4, tiny_checkpoints, estimation_crop=16, estimation_crops=2, window_quantile=0.3)
    lr = ikc.imageio.to_tensor(lr_image)
    seen = []
    corrector = model.corrector
    model.corrector = lambda sr, code, windows: seen.append(windows) or corrector(sr, code, windows)
    steps = model.run(lr_image, 2, render="none")
    assert torch.equal(seen[0], model._estimation_regions(lr, 0.3))
    assert not torch.equal(seen[0], model._estimation_regions(lr))
    expected = model.predictor(model._estimation_regions(lr)).mean(0).detach().numpy()
    assert np.allclose(steps[0].code[:-1], expected[:-1], atol=1e-6)


def test_with_window_groups_the_corrector_reads_one_group_a_step_and_the_predictor_all_of_them(tiny_checkpoints,
                                                                                              lr_image):
    model = ikc.load(4, tiny_checkpoints, estimation_crop=16, estimation_crops=2, window_groups=3)
    assert model.corrector_window_groups == 3
    lr = ikc.imageio.to_tensor(lr_image)
    regions = model._estimation_regions(lr, 1.0, 3)  # the 6 most textured windows, best first
    assert regions.shape == (6, 3, 16, 16)
    seen = []
    corrector = model.corrector
    model.corrector = lambda sr, code, windows: seen.append(windows) or corrector(sr, code, windows)
    steps = model.run(lr_image, 4, render="none")
    groups = [regions[[0, 3]], regions[[1, 4]], regions[[2, 5]]]  # ranks 3 apart: each group has one of the best
    assert len(seen) == 4 and all(torch.equal(w, groups[i % 3]) for i, w in enumerate(seen))
    expected = model.predictor(regions).mean(0).detach().numpy()
    assert np.allclose(steps[0].code[:-1], expected[:-1], atol=1e-6)
    same = ikc.load(4, tiny_checkpoints, estimation_crop=16, estimation_crops=2, window_groups=1).run(lr_image, 3)
    default = ikc.load(4, tiny_checkpoints, estimation_crop=16, estimation_crops=2).run(lr_image, 3)
    assert all(np.array_equal(a.code, b.code) and np.array_equal(a.sr, b.sr) for a, b in zip(same, default))


def test_with_window_groups_each_step_moves_to_the_mean_of_every_groups_latest_reading(tiny_checkpoints, lr_image):
    model = ikc.load(4, tiny_checkpoints, estimation_crop=16, estimation_crops=2, window_groups=3)
    regions = model._estimation_regions(ikc.imageio.to_tensor(lr_image), 1.0, 3)
    groups = [regions[[0, 3]], regions[[1, 4]], regions[[2, 5]]]
    d = torch.zeros(1, model.predictor(regions[:1]).shape[1])
    d[0, 0] = 0.3
    updates = [d, -d, 0 * d]  # what a fake Corrector reads in each group
    model.corrector = lambda sr, code, windows: next(
        u for g, u in zip(groups, updates) if torch.equal(g, windows)).expand(len(windows), -1)
    codes = [step.code[0] for step in model.run(lr_image, 4, render="none")]
    c0 = codes[0]
    assert codes[1:] == pytest.approx([c0 + 0.3, c0 + 0.15, c0 + 0.15, c0 + 0.2], abs=1e-5)  # (c1 + d ...) / 3 at 4


def test_with_a_window_pool_the_corrector_reads_the_windows_of_typical_guesses_and_step_0_averages_all(
        tiny_checkpoints, lr_image):
    model = ikc.load(4, tiny_checkpoints, estimation_crop=16, estimation_crops=2, window_pool=6)
    lr = ikc.imageio.to_tensor(lr_image)
    pool = model._estimation_regions(lr, 1.0, count=6)  # the 6 most textured windows, best first
    widths = [0.8, 1.5, 2.0, 2.1, 3.5, 2.5]  # median 2.05: windows 2 and 3 are the typical ones
    guesses = torch.from_numpy(np.stack([model.code_for(ikc.gaussian_kernel(w)) for w in widths]))
    model.predictor = lambda windows: guesses[:len(windows)] if torch.equal(windows, pool) else None
    seen = []
    model.corrector = lambda sr, code, windows: seen.append(windows) or torch.zeros_like(code)
    steps = model.run(lr_image, 2, render="none")
    assert len(seen) == 2 and all(torch.equal(w, pool[[2, 3]]) for w in seen)
    assert np.allclose(steps[0].code[:-1], guesses.mean(0).numpy()[:-1], atol=1e-6)


def test_a_window_pool_no_larger_than_the_windows_changes_nothing(tiny_checkpoints, lr_image):
    default = ikc.load(4, tiny_checkpoints, estimation_crop=16, estimation_crops=2).run(lr_image, 2)
    for pool in (0, 2):
        same = ikc.load(4, tiny_checkpoints, estimation_crop=16, estimation_crops=2, window_pool=pool).run(lr_image, 2)
        assert all(np.array_equal(a.code, b.code) and np.array_equal(a.sr, b.sr) for a, b in zip(same, default))


def test_a_window_pool_with_window_groups_is_refused(tiny_checkpoints, lr_image):
    model = ikc.load(4, tiny_checkpoints, estimation_crop=16, window_pool=6, window_groups=2)
    with pytest.raises(ValueError, match="window pool"):
        model.run(lr_image, 1)
    with pytest.raises(ValueError, match="window_pool must be"):
        ikc.load(4, tiny_checkpoints, window_pool=-1)


@pytest.mark.parametrize("groups", [0, 2.5, "3"])
def test_window_groups_that_are_not_a_whole_number_from_1_are_refused(tiny_checkpoints, groups):
    with pytest.raises(ValueError, match="window_groups must be"):
        ikc.load(4, tiny_checkpoints, window_groups=groups)


def test_a_window_quantile_outside_0_1_is_refused(tiny_checkpoints):
    with pytest.raises(ValueError, match="window_quantile must be"):
        ikc.load(4, tiny_checkpoints, window_quantile=1.5)


def test_estimation_crops_are_batched_and_averaged(tiny_checkpoints, lr_image):
    model = ikc.load(4, tiny_checkpoints, estimation_crop=16, estimation_crops=3)
    crops = model._estimation_regions(ikc.imageio.to_tensor(lr_image))
    assert crops.shape == (3, 3, 16, 16)
    steps = model.run(lr_image, 2, render="last")
    expected = model.predictor(crops).mean(0).detach().numpy()
    assert np.allclose(steps[0].code[:-1], expected[:-1], atol=1e-6)  # the noise entry is read from the image
    assert steps[-1].sr.shape == (160, 200, 3)


@pytest.mark.parametrize("crop, crops", [(4, 2), (32, 0)])
def test_bad_estimation_settings_are_refused(tiny_checkpoints, crop, crops):
    with pytest.raises(ValueError, match="estimation_crop must be"):
        ikc.load(4, tiny_checkpoints, estimation_crop=crop, estimation_crops=crops)


class TargetCorrector(torch.nn.Module):
    """Proposes `gain` times the step to a fixed target code, whatever the image; with gain 2, applied in full, the
    estimate jumps to and fro for ever."""

    def __init__(self, target: np.ndarray, gain: float = 1.0):
        super().__init__()
        self.target = torch.from_numpy(target)[None]
        self.gain = gain

    def forward(self, sr: torch.Tensor, code: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        update = self.gain * (self.target - code)
        update[:, -1] = 0
        return update


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("halve", [True, False])
def test_a_step_that_turns_back_is_halved_which_stops_an_overshooting_corrector(model, lr_image, halve, gaussian):
    target = model.code_for(ikc.gaussian_kernel(2.5))
    looped = ikc.IKC(model.sftmd, model.pca, model.predictor, TargetCorrector(target, gain=2), halve_reversals=halve,
                     gaussian_codes=gaussian)
    start = model.code_for(ikc.gaussian_kernel(1.0))
    widths = [step.kernel_width for step in looped.run(lr_image, 6, init_code=start, render="none")]
    assert widths[1] > 2.8  # the first update jumps past 2.5
    if halve:
        assert widths[2:] == pytest.approx([2.5] * 5, abs=0.02)  # the turn lands half-way back, on the target
    else:
        assert widths[-2] - 2.5 > 0.3 and 2.5 - widths[-1] > 0.2  # still jumping to and fro across 2.5


def test_export_sets_the_halving_of_a_shipped_corrector_which_the_loop_follows_unless_told(tiny_checkpoints,
                                                                                            photo_dir, tmp_path):
    folder = shutil.copytree(tiny_checkpoints, tmp_path / "copy")
    before = ikc.load(4, folder)
    assert before.halve_reversals is None and not before.halves_reversals  # a file without the flag: off
    export.main(["--scale", "4", "--sftmd-run", str(folder / "sftmd_x4.safetensors"), "--out", str(folder),
                 "--data", str(photo_dir), "--halve-reversals", "on"])
    after = ikc.load(4, folder)  # the rewritten file still matches SHA256SUMS
    assert after.halves_reversals and not ikc.load(4, folder, halve_reversals=False).halves_reversals
    for name, weights in before.corrector.state_dict().items():
        assert torch.equal(weights, after.corrector.state_dict()[name])
    export.main(["--scale", "4", "--sftmd-run", str(folder / "sftmd_x4.safetensors"), "--out", str(folder),
                 "--data", str(photo_dir), "--halve-reversals", "off"])
    assert not ikc.load(4, folder).halves_reversals


def test_a_gaussian_code_pinned_by_a_sharp_peak_moves_by_the_kernels_mean_radius(model, lr_image):
    blend = 0.85 * ikc.gaussian_kernel(0.7) + 0.15 * ikc.gaussian_kernel(4.0)  # "wider", with the sharp peak kept
    target = model.code_for(blend)
    decoded = ikc.decode_kernel(model.pca, target)
    pinned, spread = float(nearest_gaussian_width(decoded)), float(mean_radius_width(decoded))
    assert spread - pinned > 0.3  # the L2-nearest Gaussian follows the peak; the mean radius reads the blend
    looped = ikc.IKC(model.sftmd, model.pca, model.predictor, TargetCorrector(target), gaussian_codes=True,
                     halve_reversals=False)
    start = model.code_for(ikc.gaussian_kernel(pinned))  # where the L2 move alone would stay for good
    widths = [step.kernel_width for step in looped.run(lr_image, 2, init_code=start, render="none")]
    assert widths[0] == pytest.approx(pinned) and widths[1] == pytest.approx(spread, abs=0.01)
    assert widths[2] == pytest.approx(pinned, abs=0.01)  # from there the move onto the L2-nearest one is no stall


@pytest.mark.parametrize("keep", [True, False])
def test_with_gaussian_codes_every_corrected_code_is_an_isotropic_gaussians(model, lr_image, keep):
    looped = ikc.IKC(model.sftmd, model.pca, model.predictor, model.corrector, gaussian_codes=keep)
    steps = looped.run(lr_image, 3, render="none")
    on_curve = [np.allclose(step.code[:-1], looped.code_for(ikc.gaussian_kernel(step.kernel_width))[:-1], atol=1e-4)
                for step in steps]  # the kernel part; the noise entry is the Corrector's own
    assert on_curve[1:] == [keep] * 3  # the tiny Corrector's updates leave the Gaussians unless moved back
    assert np.array_equal(steps[0].code, ikc.IKC(model.sftmd, model.pca, model.predictor, model.corrector)
                          .run(lr_image, 0, render="none")[0].code)  # step 0 is the Predictor's guess either way


def test_export_sets_gaussian_codes_which_a_run_trained_that_way_implies(tiny_checkpoints, photo_dir, tmp_path):
    folder = shutil.copytree(tiny_checkpoints, tmp_path / "copy")
    assert not ikc.load(4, folder).keeps_gaussian_codes  # a file without the flag: off
    export.main(["--scale", "4", "--sftmd-run", str(folder / "sftmd_x4.safetensors"), "--out", str(folder),
                 "--data", str(photo_dir), "--gaussian-codes", "on"])
    model = ikc.load(4, folder)
    assert model.keeps_gaussian_codes and not model.halves_reversals  # the other flag is left alone
    assert not ikc.load(4, folder, gaussian_codes=False).keeps_gaussian_codes


def test_export_sets_the_window_groups_of_a_shipped_corrector(tiny_checkpoints, photo_dir, tmp_path):
    folder = shutil.copytree(tiny_checkpoints, tmp_path / "copy")
    assert ikc.load(4, folder).corrector_window_groups == 1  # a file without the setting: the same windows always
    export.main(["--scale", "4", "--sftmd-run", str(folder / "sftmd_x4.safetensors"), "--out", str(folder),
                 "--data", str(photo_dir), "--window-groups", "3"])
    model = ikc.load(4, folder)
    assert model.corrector_window_groups == 3 and not model.halves_reversals  # the flags are left alone
    assert ikc.load(4, folder, window_groups=1).corrector_window_groups == 1
    with pytest.raises(SystemExit):
        export.main(["--scale", "4", "--sftmd-run", str(folder / "sftmd_x4.safetensors"), "--out", str(folder),
                     "--data", str(photo_dir), "--window-groups", "0"])
    assert ikc.load(4, folder).corrector_window_groups == 3  # refused before anything was written
    export.main(["--scale", "4", "--sftmd-run", str(folder / "sftmd_x4.safetensors"), "--out", str(folder),
                 "--data", str(photo_dir), "--window-pool", "8"])
    assert ikc.load(4, folder).corrector_window_pool == 8 and ikc.load(4, folder).corrector_window_groups == 3


def test_halving_without_a_corrector_file_is_refused(tiny_checkpoints, photo_dir, tmp_path):
    with pytest.raises(SystemExit, match="no .*ikc_x4.safetensors"):
        export.export(4, tiny_checkpoints / "sftmd_x4.safetensors", None, tmp_path, photo_dir,
                      loop_flags={"halve_reversals": True})


def test_the_noise_level_of_step_0_is_read_from_the_image(tiny_checkpoints):
    hr = ikc.modcrop(photo("astronaut"), 4)
    noisy = ikc.degrade_image(hr, ikc.gaussian_kernel(2.0), 4, 12.0, seed=3)
    from_image = ikc.load(4, tiny_checkpoints).run(noisy, 0, render="none")[0].noise_sigma
    from_predictor = ikc.load(4, tiny_checkpoints, noise_from_image=False).run(noisy, 0, render="none")[0].noise_sigma
    assert from_image == pytest.approx(12, abs=1.5)
    assert from_predictor != pytest.approx(from_image, abs=0.01)
    clean = ikc.degrade_image(hr, ikc.gaussian_kernel(2.0), 4)  # reads below NOISE_TRUST_LEVEL: the Predictor's
    assert np.array_equal(ikc.load(4, tiny_checkpoints).run(clean, 0, render="none")[0].code,
                          ikc.load(4, tiny_checkpoints, noise_from_image=False).run(clean, 0, render="none")[0].code)


def test_a_jpeg_input_gets_the_jpeg_sftmd_with_the_same_estimators(tiny_checkpoints, tmp_path, lr_image):
    loaded = ikc.load(4, tiny_checkpoints)
    folder = shutil.copytree(tiny_checkpoints, tmp_path / "copy")
    (folder / "sftmd_x4_jpeg.safetensors").unlink()
    write_manifest(folder)
    model = ikc.load(4, folder)
    assert model.jpeg_range is None and model.for_input(60) is model  # none ships: the lossless SFTMD for all
    assert loaded.jpeg_range == (40, 80)
    assert loaded.for_input(None) is loaded and loaded.for_input(81) is loaded  # lossless, or nearly
    jpeg = loaded.for_input(60)
    assert jpeg.uses_jpeg_sftmd and not loaded.uses_jpeg_sftmd
    assert jpeg.predictor is loaded.predictor and jpeg.corrector is loaded.corrector
    code = loaded.code_for(ikc.gaussian_kernel(2.0))
    assert np.array_equal(loaded.render(lr_image, code), model.render(lr_image, code))  # lossless: as before
    assert not np.array_equal(jpeg.render(lr_image, code), loaded.render(lr_image, code))
    assert [s.sr.shape for s in jpeg.run(lr_image, 1)] == [(160, 200, 3)] * 2
    for crop in (ikc.pipeline.ESTIMATION_CROP, None):  # in windows, or on the whole image
        lossless_steps = ikc.load(4, tiny_checkpoints, estimation_crop=crop).run(lr_image, 2)
        jpeg_steps = ikc.load(4, tiny_checkpoints, estimation_crop=crop).for_input(60).run(lr_image, 2)
        for lossless, compressed in zip(lossless_steps, jpeg_steps):  # estimated as the Corrector was trained
            assert np.array_equal(lossless.code, compressed.code)
            assert not np.array_equal(lossless.sr, compressed.sr)  # rendered by the JPEG SFTMD


@pytest.mark.parametrize("network", ["sftmd", "ikc"])
def test_a_jpeg_network_that_does_not_say_its_qualities_is_refused(tiny_checkpoints, tmp_path, network):
    folder = shutil.copytree(tiny_checkpoints, tmp_path / "copy")
    shutil.copy(folder / f"{network}_x4.safetensors", folder / f"{network}_x4_jpeg.safetensors")  # no JPEG range
    write_manifest(folder)
    with pytest.raises(ikc.CheckpointError, match="which JPEG qualities"):
        ikc.load(4, folder)


def test_only_a_run_trained_on_jpeg_exports_as_the_jpeg_sftmd(tiny_checkpoints, photo_dir, tmp_path):
    with pytest.raises(SystemExit, match="not trained on JPEG"):
        export.export(4, tiny_checkpoints / "sftmd_x4.safetensors", None, tmp_path, photo_dir,
                      jpeg_sftmd_run=tiny_checkpoints.parent / "sftmd")



def test_a_jpeg_input_gets_the_jpeg_estimators_reading_the_lossless_sftmd(jpeg_estimators_checkpoints, lr_image):
    model = ikc.load(4, jpeg_estimators_checkpoints)
    assert model.jpeg_estimators_range == (40, 80) and not model.uses_jpeg_estimators
    jpeg = model.for_input(60)
    assert jpeg.uses_jpeg_estimators and jpeg.uses_jpeg_sftmd
    assert jpeg.predictor is model.jpeg_estimators[0] and jpeg.estimation_sftmd is model.sftmd
    assert model.for_input(None) is model and model.for_input(90) is model  # lossless, or above both ranges
    jpeg_codes = [step.code for step in jpeg.run(lr_image, 2, render="none")]
    lossless_codes = [step.code for step in model.run(lr_image, 2, render="none")]
    assert all(not np.array_equal(a, b) for a, b in zip(jpeg_codes, lossless_codes))


def test_jpeg_estimators_trained_on_the_jpeg_sftmd_read_its_crops(tiny_checkpoints, photo_dir, tmp_path, lr_image):
    folder = with_jpeg_estimators(tiny_checkpoints, photo_dir, tmp_path, against="sftmd_x4_jpeg")
    model = ikc.load(4, folder)
    jpeg = model.for_input(60)
    assert jpeg.uses_jpeg_estimators and jpeg.estimation_sftmd is model.jpeg_sftmd
    assert model.estimation_sftmd is model.sftmd  # lossless inputs: as before
    assert len(jpeg.run(lr_image, 1, render="none")) == 2
    (folder / "sftmd_x4_jpeg.safetensors").unlink()
    write_manifest(folder)
    with pytest.raises(ikc.CheckpointError, match="trained on the JPEG SFTMD's SR images"):
        ikc.load(4, folder)


def test_only_a_run_trained_on_jpeg_exports_as_the_jpeg_estimators(tiny_checkpoints, photo_dir, tmp_path):
    with pytest.raises(SystemExit, match="not trained on JPEG"):
        export.export(4, tiny_checkpoints / "sftmd_x4.safetensors", None, tmp_path, photo_dir,
                      jpeg_ikc_run=tiny_checkpoints.parent / "ikc")


def test_a_jpeg_sftmd_with_quality_input_is_told_the_inputs_quality_whole_or_in_tiles(lr_image):
    torch.manual_seed(0)
    pca = ikc.fit_pca(count=2000)
    lossless = ikc.SFTMD(ikc.SFTMDConfig(nf=8, nb=1))
    told = ikc.SFTMD(ikc.SFTMDConfig(nf=8, nb=1, quality_input=True))  # its quality weights are random, not zero
    metadata = {"jpeg": {"jpeg_range": [30, 95]}}
    model = ikc.IKC(lossless, pca, metadata=metadata, jpeg_sftmd=told)
    assert model.jpeg_quality is None and model.for_input(97) is model
    code = model.code_for(ikc.gaussian_kernel(2.0))
    low, high = model.for_input(40), model.for_input(90)
    assert (low.jpeg_quality, high.jpeg_quality) == (40, 90) and low.uses_jpeg_sftmd
    assert (low.told_jpeg_quality, model.told_jpeg_quality) == (40, None)
    assert not np.array_equal(low.render(lr_image, code), high.render(lr_image, code))
    tiled = ikc.IKC(lossless, pca, metadata=metadata, jpeg_sftmd=told, tile_pixels=40 * 40).for_input(40)
    assert np.abs(tiled.render(lr_image, code).astype(int) - low.render(lr_image, code)).max() <= 1
