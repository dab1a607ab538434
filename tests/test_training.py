"""Training pipeline: on-the-fly data, schedule, resume, torchrun DDP, export and evaluation contract."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ikc
from evaluation import convergence, evaluate, tune_crops
from ikc.kernel_code import decode_kernel, encode, estimate_width, nearest_gaussian_code_torch
from training import config as run_config
from training import dataset, export, loop, pack_photos, state, train_ikc, train_sftmd, validation
from training.config import TrainConfig
from training.dataset import DegradationRange, PatchSampler, list_images, split_holdout
from training.loop import learning_rate, rate_schedule
from training.state import read_state
from training.train_ikc import Trajectories, perturbed_codes

from .conftest import REPO, photo

TINY = dict(scale=4, nf=8, nb=1, estimator_nf=8, batch_size=2, lr_patch=12, holdout_images=1, validate_every=2,
            warmup_steps=1, correction_steps=2)


def test_sampler_makes_degraded_pairs_with_true_codes(photo_dir):
    pca = ikc.fit_pca(count=2000)
    sampler = PatchSampler(list_images(photo_dir), pca, 4, 16, DegradationRange(clean_fraction=0.0), seed=3)
    batch = sampler.sample(4)
    assert batch.lr.shape == (4, 3, 16, 16) and batch.hr.shape == (4, 3, 64, 64)
    assert torch.all((0.2 <= batch.sigma) & (batch.sigma <= 4.0)) and torch.all(batch.noise <= 25)
    kernels = ikc.decode_kernel(pca, batch.code.numpy())
    assert ikc.estimate_width(kernels) == pytest.approx(batch.sigma.numpy(), abs=0.05)
    assert batch.code[:, -1].numpy() * 25 == pytest.approx(batch.noise.numpy(), abs=1e-4)
    lr_levels = batch.lr * 255
    assert torch.allclose(lr_levels, lr_levels.round(), atol=1e-4)  # 8-bit like a saved LR image


def test_holdout_split_is_stable_and_disjoint(photo_dir):
    paths = list_images(photo_dir)
    train, held = split_holdout(paths, 2)
    assert len(held) == 2 and not set(train) & set(held) and split_holdout(paths, 2) == (train, held)


def test_a_packed_copy_holds_out_the_same_photos():
    names = [f"source__photo_{i:02d}" for i in range(40)]
    _, originals = split_holdout([Path("data/train") / f"{n}.png" for n in names], 4)
    _, packed = split_holdout([Path("data/gpu_train") / f"{n}.jpg" for n in names], 4)
    assert [p.stem for p in packed] == [p.stem for p in originals]


def test_learning_rate_warms_up_then_decays():
    config = TrainConfig(learning_rate=1e-3, min_learning_rate=1e-6, warmup_steps=10, total_steps=110)
    rates = [learning_rate(s, config) for s in range(120)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[-1] == pytest.approx(1e-6)


def test_anneal_schedule_warms_up_by_step_then_follows_the_clock(monkeypatch):
    config = TrainConfig(learning_rate=1e-3, min_learning_rate=1e-6, warmup_steps=10, total_steps=110)
    clock = [1000.0]
    monkeypatch.setattr(loop.time, "time", lambda: clock[0])
    rate = rate_schedule(config, start_step=500, anneal_minutes=2)
    assert rate(500) == pytest.approx(1e-4) and rate(509) == pytest.approx(1e-3)  # warm-up from the resumed step
    clock[0] += 60  # half the budget, whatever the step
    assert rate(510) == pytest.approx(rate(90000)) == pytest.approx(1e-6 + 0.5 * (1e-3 - 1e-6))
    clock[0] += 120  # past the budget: the minimum, not a new cycle
    assert rate(600) == pytest.approx(1e-6)
    assert rate_schedule(config, 500)(50) == learning_rate(50, config)  # without anneal: by step


def test_pack_photos_halves_large_photos_and_writes_jpeg_crops_with_a_marked_manifest(photo_dir, tmp_path):
    (tmp_path / "data").mkdir()
    for path in list_images(photo_dir)[:2]:
        (tmp_path / "data" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "data" / "manifest.json").write_text(json.dumps([{"file": "a.png", "source": "test"}]))
    written = pack_photos.pack(tmp_path / "data", tmp_path / "out", crop=150, quality=95, halve_from=400)
    packed = list_images(tmp_path / "out")
    assert len(packed) == 2 and all(p.suffix == ".jpg" for p in packed)
    assert written == sum(p.stat().st_size for p in packed)
    assert all(max(ikc.load_image(p).shape[:2]) <= 150 for p in packed)
    entry, = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert entry["source"] == "test" and "JPEG quality 95" in entry["packed"] and "halved" in entry["packed"]


def test_packed_photo_is_halved_with_antialiasing_only_from_its_threshold():
    stripes = np.zeros((200, 300, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: a halving without antialiasing would keep them black or white
    halved = pack_photos.packed_photo(stripes, crop=500, halve_from=200)
    assert halved.shape == (100, 150, 3) and np.abs(halved[10:-10, 10:-10].astype(int) - 128).max() <= 8
    kept = pack_photos.packed_photo(stripes, crop=64, halve_from=201)
    assert kept.shape == (64, 64, 3) and np.array_equal(kept, stripes[68:132, 118:182])


@pytest.mark.slow
def test_resume_continues_from_the_saved_step(photo_dir, tmp_path):
    config = TrainConfig(**TINY)
    train_sftmd.train(config, photo_dir, tmp_path / "run", None, 2, 1)
    first, meta = read_state(tmp_path / "run" / "state.safetensors")
    assert meta["step"] == 2 and any(k.startswith("optim.") for k in first)
    train_sftmd.train(config, photo_dir, tmp_path / "run", None, 4, 1)
    second, meta = read_state(tmp_path / "run" / "state.safetensors")
    assert meta["step"] == 4
    assert not torch.equal(first["sftmd.head.0.weight"], second["sftmd.head.0.weight"])
    assert "resumed from step 2" in (tmp_path / "run" / "log.txt").read_text()


@pytest.mark.slow
def test_torchrun_trains_two_cpu_processes(photo_dir, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("\n".join(f"{k}: {v}" for k, v in TINY.items()) + "\n")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
               "-m", "training.train_sftmd", "--config", str(config), "--run-dir", str(tmp_path / "ddp"),
               "--data", str(photo_dir), "--steps", "3", "--threads", "1"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "ddp" / "log.txt").read_text()
    assert "world 2" in log and "stopped at step 3" in log


@pytest.mark.slow
def test_evaluate_contract_json_keys(tiny_checkpoints, photo_dir, tmp_path):
    out = tmp_path / "result.json"
    evaluate.main(["--hr-dir", str(photo_dir), "--scale", "4", "--sigmas", "1.8,3.2", "--iterations", "2",
                   "--checkpoints", str(tiny_checkpoints), "--json", str(out)])
    result = json.loads(out.read_text())
    assert set(result["methods"]) == {"bicubic", "sftmd_gt", "p_sftmd", "ikc"}
    for scores in result["methods"].values():
        assert 10 < scores["psnr_y"] < 60 and 0 < scores["ssim_y"] <= 1
    assert len(result["ikc_per_iteration"]) == 3
    assert result["ikc_per_iteration"][-1] == pytest.approx(result["methods"]["ikc"]["psnr_y"])
    assert result["ikc_per_iteration"][0] == pytest.approx(result["methods"]["p_sftmd"]["psnr_y"])
    assert [(pair["image"], pair["sigma"]) for pair in result["pairs"]][:2] == [(result["images"][0], 1.8),
                                                                             (result["images"][0], 3.2)]
    assert len(result["pairs"]) == 2 * len(result["images"])
    assert np.mean([pair["psnr_y"]["ikc"] for pair in result["pairs"]]) == pytest.approx(
        result["methods"]["ikc"]["psnr_y"])
    assert all(len(pair["width_per_step"]) == 3 and 0 < min(pair["width_per_step"]) for pair in result["pairs"])


@pytest.mark.slow
def test_evaluate_with_two_workers_or_final_only_gives_the_same_result(tiny_checkpoints, photo_dir, tmp_path):
    common = ["--hr-dir", str(photo_dir), "--scale", "4", "--sigmas", "1.8,3.2", "--iterations", "1",
              "--noise", "10", "--checkpoints", str(tiny_checkpoints)]
    one, two = evaluate.main(common), evaluate.main(common + ["--workers", "2"])
    for method, scores in one["methods"].items():
        assert two["methods"][method] == pytest.approx(scores)
    assert two["ikc_per_iteration"] == pytest.approx(one["ikc_per_iteration"])
    final_only = evaluate.main(common + ["--final-only"])
    for method, scores in one["methods"].items():
        assert final_only["methods"][method] == pytest.approx(scores)
    assert "ikc_per_iteration" not in final_only
    with pytest.raises(SystemExit):
        evaluate.main(common + ["--workers", "0"])


def test_evaluate_can_save_the_lr_images_as_jpeg(tiny_checkpoints, photo_dir):
    common = ["--hr-dir", str(photo_dir), "--scale", "4", "--sigmas", "1.8", "--methods", "bicubic",
              "--checkpoints", str(tiny_checkpoints)]
    lossless, compressed = evaluate.main(common), evaluate.main(common + ["--jpeg-quality", "30"])
    assert lossless["jpeg_quality"] is None and compressed["jpeg_quality"] == 30
    assert compressed["methods"]["bicubic"]["psnr_y"] < lossless["methods"]["bicubic"]["psnr_y"]
    with pytest.raises(SystemExit):
        evaluate.main(common + ["--jpeg-quality", "0"])


def test_gaussian8_defaults():
    assert evaluate.parse_sigmas(None, 4) == pytest.approx(list(np.linspace(1.8, 3.2, 8)))
    assert evaluate.parse_sigmas("1.0, 2.0", 2) == [1.0, 2.0]


@pytest.mark.slow
def test_sigterm_saves_the_state_before_exiting(photo_dir, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("\n".join(f"{k}: {v}" for k, v in TINY.items()) + "\n")
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "training.train_sftmd", "--config", str(config), "--run-dir",
                                str(run), "--data", str(photo_dir), "--threads", "1"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run / "metrics.csv").exists() and time.time() < deadline:  # the first validation (step 2)
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    _, meta = read_state(run / "state.safetensors")
    assert meta["step"] >= 2
    assert f"stopped at step {meta['step']}" in (run / "log.txt").read_text()


def test_a_new_session_resumes_from_the_shipped_checkpoint(photo_dir, tiny_checkpoints, tmp_path):
    config = TrainConfig(**TINY)
    shipped = tiny_checkpoints / "sftmd_x4.safetensors"
    train_sftmd.train(config, photo_dir, tmp_path / "run", None, 5, 1, from_checkpoint=shipped)
    tensors, meta = read_state(tmp_path / "run" / "state.safetensors")
    assert meta["step"] == 5  # the checkpoint's 3 steps, then 2 more
    assert np.array_equal(tensors["pca.matrix"].numpy(), ikc.load(4, tiny_checkpoints).pca.matrix)
    assert "started from" in (tmp_path / "run" / "log.txt").read_text()


def test_another_scale_starts_from_the_x4_body(photo_dir, tiny_checkpoints, tmp_path):
    config = TrainConfig(**{**TINY, "scale": 2, "sigma_max": 2.0})
    train_sftmd.train(config, photo_dir, tmp_path / "x2", None, 1, 1,
                      from_checkpoint=tiny_checkpoints / "sftmd_x4.safetensors")
    tensors, meta = read_state(tmp_path / "x2" / "state.safetensors")
    assert meta["step"] == 1
    log = (tmp_path / "x2" / "log.txt").read_text()
    assert "started from" in log and "step 0" in log


def test_tune_crops_scores_each_setting_on_held_out_photos(tiny_checkpoints, photo_dir, capsys):
    results = tune_crops.main(["--settings", "20:1,16:2,0:1", "--iterations", "1", "--crop", "96",
                               "--data", str(photo_dir), "--checkpoints", str(tiny_checkpoints)])
    assert list(results) == ["20:1", "16:2", "0:1"] and all(10 < v < 60 for v in results.values())
    assert "16:2: final PSNR-Y" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tune_crops.main(["--settings", "28x2", "--data", str(photo_dir)])
    assert "SIZE:COUNT" in capsys.readouterr().err


def test_width_perturbed_codes_are_gaussians_of_another_width():
    pca = ikc.fit_pca(count=2000)
    config = TrainConfig(perturbed_width_std=0.5, sigma_min=0.2, sigma_max=4.0)
    sigma, noise = torch.tensor([0.3, 1.0, 2.0, 3.0, 3.9]), torch.tensor([0.0, 5.0, 0.0, 10.0, 0.0])
    true = torch.from_numpy(encode(pca, np.stack([ikc.gaussian_kernel(float(s)) for s in sigma]), noise.numpy()))
    torch.manual_seed(0)
    wrong = perturbed_codes(true, sigma, noise, config, pca).numpy()
    widths = estimate_width(decode_kernel(pca, wrong))
    assert np.all((widths >= 0.2) & (widths <= 4.0)) and np.abs(widths - sigma.numpy()).min() > 0.01
    back = encode(pca, np.stack([ikc.gaussian_kernel(float(w)) for w in widths]), noise.numpy())
    assert np.abs(back - wrong).max() < 0.15  # on the curve of Gaussian codes (widths read to 0.01), noise kept


def test_uniform_starts_cover_the_range_whatever_the_truth():
    pca = ikc.fit_pca(count=2000)
    config = TrainConfig(uniform_start_fraction=1.0, sigma_min=0.2, sigma_max=4.0)
    sigma, noise = torch.full((200,), 2.0), torch.zeros(200)
    true = torch.from_numpy(encode(pca, np.stack([ikc.gaussian_kernel(2.0)] * 200), noise.numpy()))
    torch.manual_seed(0)
    widths = estimate_width(decode_kernel(pca, perturbed_codes(true, sigma, noise, config, pca).numpy()))
    assert widths.min() < 0.6 and widths.max() > 3.6  # far starts on both sides of the truth
    assert np.abs(widths - 2.0).mean() > 0.8


def test_replayed_trajectories_carry_on_where_they_stopped_until_their_rounds_are_used_up():
    lr, target = torch.arange(4.0).view(4, 1, 1, 1), torch.arange(4.0).view(4, 1) + 10
    ended = Trajectories(lr, target, target + 0.5, torch.tensor([0, 2, 1, 2]))
    old = ended.take(3, max_rounds=2)
    assert sorted(old.lr.flatten().tolist()) == [0.0, 2.0]  # only those with rounds left, at most 3
    fresh_lr, fresh_target = torch.full((4, 1, 1, 1), -1.0), torch.full((4, 1), -1.0)
    batch = old.replacing_tail(fresh_lr, fresh_target, fresh_target)
    assert batch.lr.flatten().tolist()[:2] == [-1.0, -1.0] and batch.rounds[:2].tolist() == [0, 0]
    assert torch.equal(batch.code[2:], batch.target[2:] + 0.5)  # each carried on from the code it reached
    assert torch.equal(batch.lr[2:].flatten() + 10, batch.target[2:].flatten())  # patch and truth stay paired


def test_a_corrector_run_with_replay_trains_and_validates(photo_dir, tiny_checkpoints, tmp_path):
    config = TrainConfig(**{**TINY, "train_predictor": False, "replay_fraction": 0.5, "replay_rounds": 1})
    error = train_ikc.train(config, tiny_checkpoints / "sftmd_x4.safetensors", photo_dir, tmp_path / "run", None, 6,
                            1, from_checkpoint=tiny_checkpoints / "ikc_x4.safetensors")
    assert np.isfinite(error) and read_state(tmp_path / "run" / "state.safetensors")[1]["step"] == 6  # 3 more


def test_a_corrector_run_with_a_moving_average_validates_and_keeps_the_average(photo_dir, tiny_checkpoints,
                                                                               tmp_path):
    config = TrainConfig(**{**TINY, "train_predictor": False, "ema_decay": 0.5, "validate_every": 3})
    run = tmp_path / "run"
    train_ikc.train(config, tiny_checkpoints / "sftmd_x4.safetensors", photo_dir, run, None, 6, 1,
                    from_checkpoint=tiny_checkpoints / "ikc_x4.safetensors")  # steps 3 to 6, validated at 6
    state, best = read_state(run / "state.safetensors")[0], read_state(run / "best.safetensors")[0]
    key = next(k for k in state if k.startswith("corrector.") and k.endswith("weight"))
    assert not torch.equal(state[key], state[f"ema.{key}"])  # the average lags the trained weights
    assert torch.equal(best[key], state[f"ema.{key}"])  # best holds what was validated: the average
    train_ikc.train(config, tiny_checkpoints / "sftmd_x4.safetensors", photo_dir, run, None, 7, 1)  # resumes
    assert not torch.equal(read_state(run / "state.safetensors")[0][f"ema.{key}"], state[f"ema.{key}"])


def test_texture_pick_keeps_the_most_textured_crops(photo_dir):
    pca = ikc.fit_pca(count=2000)
    plain = PatchSampler(list_images(photo_dir), pca, 4, 12, DegradationRange(), seed=0)
    picky = PatchSampler(list_images(photo_dir), pca, 4, 12, DegradationRange(), seed=0)
    energy = [np.mean([dataset.texture((b.hr[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
                       for i in range(len(b.hr))]) for b in (plain.sample(16), picky.sample(16, texture_pick=3))]
    assert energy[1] > 1.2 * energy[0]


def test_an_overestimated_width_costs_the_set_weight_and_an_underestimate_as_before():
    pca = ikc.fit_pca(count=2000)
    codes = torch.from_numpy(encode(pca, np.stack([ikc.gaussian_kernel(w) for w in (2.0, 1.6, 2.4)]), np.zeros(3)))
    true, narrow, wide = codes[:1], codes[1:2], codes[2:]
    plain, charged = (train_ikc.code_loss(pca, 1.0, 0.0, overestimate_weight=w) for w in (1.0, 3.0))
    spread_only = train_ikc.code_loss(pca, 1.0, 0.0)(wide, true) - torch.nn.functional.mse_loss(wide, true)
    assert charged(narrow, true) == pytest.approx(plain(narrow, true).item())
    assert charged(wide, true).item() == pytest.approx(plain(wide, true).item() + 2 * spread_only.item(), rel=1e-5)
    assert spread_only > 0.01


def test_jpeg_patches_are_drawn_only_when_asked_for(photo_dir):
    pca = ikc.fit_pca(count=2000)
    paths = list_images(photo_dir)
    before, without, compressed = (PatchSampler(paths, pca, 4, 16, DegradationRange(clean_fraction=1.0, **extra),
                                                seed=5).sample(4)
                                   for extra in ({}, {"jpeg_fraction": 0.0}, {"jpeg_fraction": 1.0, "jpeg_min": 30,
                                                                             "jpeg_max": 30}))
    assert torch.equal(before.lr, without.lr)  # runs without JPEG draw exactly as they did
    assert torch.equal(before.compression, torch.zeros(4))
    assert torch.allclose(compressed.compression, torch.full((4,), 0.7))  # what an SFTMD told the quality reads
    assert torch.equal(before.hr, compressed.hr) and torch.equal(before.code, compressed.code)
    again = ikc.degrade(compressed.hr, torch.from_numpy(np.stack([ikc.gaussian_kernel(float(s))
                                                                  for s in compressed.sigma])), 4, jpeg_quality=30)
    assert torch.equal(compressed.lr, again) and not torch.equal(compressed.lr, before.lr)


def test_a_jpeg_run_also_validates_on_compressed_crops(photo_dir):
    pca = ikc.fit_pca(count=2000)
    plain = validation.validation_set(photo_dir, TrainConfig(**TINY), pca, crop=48)
    both = validation.validation_set(photo_dir, TrainConfig(**TINY, validation_jpeg=50), pca, crop=48)
    assert len(both) == 2 * len(plain)
    assert all(torch.equal(a.lr, b.lr) for a, b in zip(plain, both[::2]))
    assert all(not torch.equal(a.lr, b.lr) and torch.equal(a.hr, b.hr) for a, b in zip(both[::2], both[1::2]))
    assert {float(crop.compression) for crop in both} == {0.0, 0.5}
    jpeg_only = validation.validation_set(photo_dir, TrainConfig(**TINY, validation_jpeg=[50, 90],
                                                                 validate_lossless=False), pca, crop=48)
    assert len(jpeg_only) == 2 * len(plain)
    assert all(torch.equal(a.lr, b.lr) for a, b in zip(both[1::2], jpeg_only[::2]))  # q50, then q90
    assert all(not torch.equal(a.lr, b.lr) for a, b in zip(plain, jpeg_only[1::2]))


def test_set_overrides_config_values_and_refuses_unknown_keys(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("batch_size: 4\namp: false\n")
    parser = __import__("argparse").ArgumentParser()
    run_config.add_run_arguments(parser)
    args = parser.parse_args(["--config", str(config), "--run-dir", "r", "--set", "batch_size=64", "--set",
                              "amp=true", "--set", "ema_decay=0.999"])
    loaded = run_config.load_config(args)
    assert (loaded.batch_size, loaded.amp, loaded.ema_decay) == (64, True, 0.999)
    rate = run_config.load_config(parser.parse_args(["--config", str(config), "--run-dir", "r", "--set",
                                                     "learning_rate=1e-4"])).learning_rate
    assert rate == 1e-4 and isinstance(rate, float)  # YAML alone would read "1e-4" as a string
    with pytest.raises(ValueError, match="learning_rate must be a number, got 'fast'"):
        run_config.load_config(parser.parse_args(["--config", str(config), "--run-dir", "r", "--set",
                                                  "learning_rate=fast"]))
    with pytest.raises(ValueError, match="unknown config keys \\['batch'\\]"):
        run_config.load_config(parser.parse_args(["--config", str(config), "--run-dir", "r", "--set", "batch=1"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--config", str(config), "--run-dir", "r", "--set", "batch_size"])


def test_a_variant_config_overrides_its_base_and_every_shipped_config_loads(tmp_path):
    (tmp_path / "base.yaml").write_text("scale: 2\nbatch_size: 4\nlearning_rate: 1.0e-3\n")
    (tmp_path / "fast.yaml").write_text("base: base.yaml\nbatch_size: 32\n")
    loaded = TrainConfig.from_yaml(tmp_path / "fast.yaml", learning_rate=5e-4)
    assert (loaded.scale, loaded.batch_size, loaded.learning_rate) == (2, 32, 5e-4)
    (tmp_path / "bad.yaml").write_text("base: fast.yaml\nbatch: 1\n")
    with pytest.raises(ValueError, match="unknown config keys \\['batch'\\]"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")
    for path in (REPO / "training" / "configs").glob("*.yaml"):
        assert TrainConfig.from_yaml(path).scale in (2, 3, 4)


@pytest.mark.slow
def test_bf16_training_with_a_moving_average_saves_both_and_export_takes_the_better(photo_dir, tmp_path):
    config = TrainConfig(**{**TINY, "amp": True, "ema_decay": 0.5, "log_every": 3})
    train_sftmd.train(config, photo_dir, tmp_path / "run", None, 4, 1)
    tensors, meta = read_state(tmp_path / "run" / "state.safetensors")
    assert meta["step"] == 4 and np.isfinite(meta["ema_psnr"]) and np.isfinite(meta["last_psnr"])
    assert not torch.equal(tensors["ema.head.0.weight"], tensors["sftmd.head.0.weight"])
    assert state.sftmd_weights({"ema_psnr": 25.0, "last_psnr": 24.0}) == "ema"
    assert state.sftmd_weights({"ema_psnr": float("nan"), "last_psnr": 24.0}) == "sftmd"
    out = tmp_path / "out"
    export.export(4, tmp_path / "run", None, out, photo_dir)
    weights = state.sftmd_weights(meta)
    shipped, metadata = ikc.checkpoint.read_file(out / "sftmd_x4.safetensors")
    assert metadata["weights"] == weights
    assert torch.equal(shipped["sftmd.head.0.weight"].float(), tensors[f"{weights}.head.0.weight"])
    train_sftmd.train(config, photo_dir, tmp_path / "run", None, 5, 1)  # resumes with its average
    assert "resumed from step 4" in (tmp_path / "run" / "log.txt").read_text()
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in metrics if line.endswith(",")] == ["3"], "the loss read every 3 steps"


def test_throughput_probe_measures_each_setting_and_writes_the_choice(tiny_checkpoints, photo_dir, tmp_path):
    from training import throughput
    config = tmp_path / "tiny.yaml"
    config.write_text("\n".join(f"{k}: {v}" for k, v in TINY.items()) + "\n")
    results = throughput.main(["--device", "cpu", "--seconds", "0.3", "--config", str(config), "--data",
                               str(photo_dir), "--checkpoints", str(tiny_checkpoints), "--settings",
                               "b2p12,b2p12+amp+nchw", "--json", str(tmp_path / "r.json"), "--choice",
                               str(tmp_path / "choice.txt"), "--threads", "1"])
    assert [r["setting"]["amp"] for r in results] == [False, True] and not results[1]["setting"]["channels_last"]
    for result in results:
        assert result["steps"] >= 1 and result["lr_pixels_seen"] == result["steps"] * 2 * 12 ** 2
        assert result["lr_pixels_per_second"] > 0 and np.isfinite(result["held_out_l1"])
    chosen = json.loads((tmp_path / "r.json").read_text())["chosen"]
    assert (tmp_path / "choice.txt").read_text().split() == [
        word for option in throughput.Setting(**chosen["setting"]).overrides() for word in ("--set", option)]
    with pytest.raises(ValueError, match="b<batch>p<patch>"):
        throughput.Setting.parse("64x64")


@pytest.mark.slow
def test_the_lent_gpu_script_runs_both_calls_on_the_cpu(tiny_checkpoints, photo_dir, tmp_path):
    """A dry run of training/lent_gpu.sh with tiny networks and seconds: both calls leave candidates and logs."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("ikc", "training", "evaluation"):
        (checkout / name).symlink_to(REPO / name)
    (checkout / "checkpoints").symlink_to(tiny_checkpoints)
    bench = tmp_path / "bench" / "Set5"
    bench.mkdir(parents=True)
    ikc.save_png(ikc.load_image(list_images(photo_dir)[0])[:96, :96], bench / "one.png")
    tiny = " ".join(f"--set {k}={v}" for k, v in {**TINY, "validate_every": 1000}.items() if k != "scale")
    env = {**os.environ, "DEVICE": "cpu", "THREADS": "1", "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs"),
           "DATA": str(photo_dir), "BENCH": str(tmp_path / "bench"), "SCALES": "4", "PROBE_SECONDS": "0.2",
           "PROBE_SETTINGS": "b2p12", "SFTMD_MINUTES": "0.01", "IKC_MINUTES": "0.01", "EXTRA": tiny,
           "PYTHONPATH": str(checkout)}
    for phase in ("sftmd", "corrector", "jpeg"):
        result = subprocess.run(["bash", "training/lent_gpu.sh", phase], cwd=checkout, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "out"
    assert (out / "throughput.json").is_file() and (out / "runs" / "gpu_runs.tgz").is_file()
    assert ikc.load(4, out / "cand").blind, "SFTMD from call 1, Predictor/Corrector from call 2"
    assert json.loads((out / "set5_x4.json").read_text())["images"] == ["one.png"]
    assert "--set batch_size=2 --set lr_patch=12" in (tmp_path / "runs" / "choice.txt").read_text()
    assert ikc.load(4, out / "cand").jpeg_range == (30, 95), "call 3: an SFTMD for JPEG inputs beside them"
    assert ikc.load(4, out / "cand").jpeg_sftmd.config.quality_input, "told the quality"


def test_a_corrector_run_that_sees_the_lr_image_grows_from_a_shipped_one_and_exports(photo_dir, tiny_checkpoints,
                                                                                    tmp_path):
    config = TrainConfig(**{**TINY, "train_predictor": False, "corrector_sees_lr": True})
    sftmd = tiny_checkpoints / "sftmd_x4.safetensors"
    train_ikc.train(config, sftmd, photo_dir, tmp_path / "run", None, 4, 1,
                    from_checkpoint=tiny_checkpoints / "ikc_x4.safetensors")
    export.export(4, sftmd, tmp_path / "run", tmp_path / "out", photo_dir)
    model = ikc.load(4, tmp_path / "out")
    assert model.corrector.config.corrector_sees_lr and model.corrector.convs[0].in_channels == 7
    lr = ikc.degrade_image(photo("coffee")[:160, :160], ikc.gaussian_kernel(2.0), 4)
    assert len(model.run(lr, 2, render="none")) == 3


def test_a_corrector_run_exports_its_moving_average_blended_with_the_corrector_it_started_from(
        photo_dir, tiny_checkpoints, tmp_path):
    config = TrainConfig(**{**TINY, "train_predictor": False, "ema_decay": 0.5, "learning_rate": 1e-2})
    sftmd, shipped = tiny_checkpoints / "sftmd_x4.safetensors", tiny_checkpoints / "ikc_x4.safetensors"
    train_ikc.train(config, sftmd, photo_dir, tmp_path / "run", None, 6, 1, from_checkpoint=shipped)
    run, _ = read_state(tmp_path / "run" / "state.safetensors")
    assert not torch.equal(run["ema.corrector.convs.0.weight"], run["corrector.convs.0.weight"])
    out = tmp_path / "out"
    export.export(4, sftmd, tmp_path / "run", out, photo_dir, blend_with=shipped, blend_weight=0.25)
    written, metadata = ikc.checkpoint.read_file(out / "ikc_x4.safetensors")
    before, _ = ikc.checkpoint.read_file(shipped)
    key = "corrector.convs.0.weight"
    torch.testing.assert_close(written[key].float(), 0.25 * run[f"ema.{key}"] + 0.75 * before[key].float())
    assert torch.equal(written["predictor.convs.0.weight"].float(), run["ema.predictor.convs.0.weight"])
    assert metadata["corrector_blend"]["weight"] == 0.25
    with pytest.raises(SystemExit, match="from 0 to 1"):
        export.export(4, sftmd, tmp_path / "run", out, photo_dir, blend_with=shipped, blend_weight=1.5)
    with pytest.raises(SystemExit, match="needs --ikc-run"):
        export.export(4, sftmd, None, out, photo_dir, blend_with=shipped)
    with pytest.raises(SystemExit, match="not a training run's state"):  # a shipped file where a run belongs
        export.export(4, sftmd, shipped, out, photo_dir)


def test_a_corrector_run_on_gaussian_codes_moves_its_codes_and_exports_a_corrector_the_loop_keeps_on_them(
        photo_dir, tiny_checkpoints, tmp_path, monkeypatch):
    moved = []

    def recording(pca, codes):
        moved.append(len(codes))
        return nearest_gaussian_code_torch(pca, codes)

    monkeypatch.setattr(train_ikc, "nearest_gaussian_code_torch", recording)
    config = TrainConfig(**{**TINY, "train_predictor": False, "gaussian_codes": True})
    sftmd = tiny_checkpoints / "sftmd_x4.safetensors"
    train_ikc.train(config, sftmd, photo_dir, tmp_path / "run", None, 4, 1,
                    from_checkpoint=tiny_checkpoints / "ikc_x4.safetensors")
    assert moved and set(moved) == {config.batch_size}  # every correction step of every batch
    export.export(4, sftmd, tmp_path / "run", tmp_path / "out", photo_dir)
    assert ikc.load(4, tmp_path / "out").keeps_gaussian_codes


def test_a_jpeg_corrector_run_validates_on_compressed_crops_only(photo_dir, tiny_checkpoints, tmp_path, monkeypatch):
    made = []

    def recording(*args):
        made.extend(convergence.make_cases(*args))
        return made

    monkeypatch.setattr(train_ikc, "make_cases", recording)
    config = TrainConfig(**{**TINY, "jpeg_fraction": 1.0, "validation_jpeg": [60, 90], "validate_lossless": False})
    error = train_ikc.train(config, tiny_checkpoints / "sftmd_x4.safetensors", photo_dir, tmp_path / "run", None, 4,
                            1, from_checkpoint=tiny_checkpoints / "ikc_x4.safetensors")
    assert np.isfinite(error) and sorted({case.jpeg_quality for case in made}) == [60, 90]


def test_a_corrector_run_can_also_validate_on_a_folder_of_development_photos(photo_dir, tmp_path):
    held_out = split_holdout(list_images(photo_dir), 1)[1]
    assert train_ikc.validation_photos(TrainConfig(**TINY), held_out) == held_out
    config = TrainConfig(**TINY, validation_photos=str(photo_dir), validation_limit=2)
    assert train_ikc.validation_photos(config, held_out) == held_out + list_images(photo_dir)[:2]
    with pytest.raises(SystemExit, match="no folder"):
        train_ikc.validation_photos(TrainConfig(**TINY, validation_photos=str(tmp_path / "missing")), held_out)


def test_an_sftmd_run_told_the_jpeg_quality_grows_from_a_jpeg_checkpoint_and_p_c_runs_refuse_it(
        photo_dir, tiny_checkpoints, tmp_path):
    config = TrainConfig(**TINY, quality_input=True, jpeg_fraction=1.0, jpeg_min=40, jpeg_max=80,
                         validation_jpeg=[50, 90], validate_lossless=False)
    start = tiny_checkpoints / "sftmd_x4_jpeg.safetensors"
    train_sftmd.train(config, photo_dir, tmp_path / "told", None, 4, 1, from_checkpoint=start)
    grown = run_config.build_sftmd(config)
    state.start_from_checkpoint(start, {"sftmd": grown}, 4)
    original, pca, _ = ikc.pipeline.load_sftmd(start)
    crops = validation.validation_set(photo_dir, config, pca)
    assert [round(float(crop.compression), 2) for crop in crops[:2]] == [0.5, 0.1]  # q50, then q90, per crop
    assert train_sftmd.validate(grown, crops) == pytest.approx(
        train_sftmd.validate(original, crops), abs=1e-4)  # it starts as the checkpoint
    with pytest.raises(SystemExit, match="quality_input"):
        train_ikc.frozen_sftmd(tmp_path / "told")
