"""The convergence tool: per-step width error and PSNR-Y from several starts (evaluation.convergence)."""
import json

import numpy as np
import pytest
from PIL import Image

import ikc
from evaluation import convergence

from .conftest import photo


def test_parse_starts_accepts_the_predictor_and_widths_and_names_a_bad_item():
    assert convergence.parse_starts("predictor, 1.0,4") == ["predictor", "1.0", "4"]
    for bad in ("predictor,wide", "0", "", "-1"):
        with pytest.raises(ValueError, match="--starts"):
            convergence.parse_starts(bad)


@pytest.mark.slow
def test_errors_per_step_start_at_the_start_width(tiny_checkpoints):
    model = ikc.load(4, tiny_checkpoints)
    cases = convergence.make_cases([("coffee", photo("coffee")[:130, :150])], 4, [1.8, 3.2], crop=96)
    assert [case.hr.shape for case in cases] == [(96, 96, 3)] * 2 and cases[0].lr.shape == (24, 24, 3)
    results = convergence.convergence(model, cases, ["predictor", "1.0"], iterations=3)
    assert set(results) == {"predictor", "1.0"}
    for result in results.values():
        assert len(result["error"]) == 4 and len(result["psnr"]) == 4
        assert result["ratio"] == pytest.approx(result["error"][-1] / result["error"][0], abs=1e-3)
    assert results["1.0"]["error"][0] == pytest.approx((0.8 + 2.2) / 2, abs=0.011)
    assert results["1.0"]["bias"][0] == pytest.approx(-(0.8 + 2.2) / 2, abs=0.011)  # both truths wider than 1.0
    by_width = results["1.0"]["bias_by_width"]
    assert set(by_width) == {"1.8", "3.2"} and len(by_width["1.8"]) == 4
    assert by_width["1.8"][0] == pytest.approx(-0.8, abs=0.011) and by_width["3.2"][0] == pytest.approx(-2.2, abs=0.011)
    assert np.mean([by_width["1.8"], by_width["3.2"]], axis=0) == pytest.approx(results["1.0"]["bias"], abs=1e-3)
    widths_only = convergence.convergence(model, cases, ["1.0"], iterations=3, psnr=False)
    assert widths_only["1.0"]["error"] == results["1.0"]["error"] and "psnr" not in widths_only["1.0"]


@pytest.mark.slow
def test_command_line_writes_json_and_plot(tiny_checkpoints, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo("chelsea")[:120, :120]).save(folder / "cat.png")
    out = tmp_path / "c.json"
    convergence.main(["--hr-dir", str(folder), "--scale", "4", "--checkpoints", str(tiny_checkpoints),
                      "--iterations", "2", "--crop", "96", "--json", str(out), "--plot", str(tmp_path / "c.png"),
                      "--window-gap", "--best-render", "--estimation-crop", "16", "--estimation-crops", "3",
                      "--window-readings", "2"])
    summary = json.loads(out.read_text())
    assert set(summary["results"]) == {"predictor", "1.0", "4.0"} and summary["photos"] == 1
    assert (summary["options"]["estimation_crop"], summary["options"]["estimation_crops"]) == (16, 3)
    assert len(summary["results"]["4.0"]["error"]) == 3 and summary["window_gap"]["gap"] >= 0
    assert Image.open(tmp_path / "c.png").size[0] > 600
    rows = summary["window_readings"]  # a 24-px LR image has room for one 16-px window, not the 2 asked
    assert [(row["name"], len(row["readings"])) for row in rows] == [("cat.png", 1)] * len(summary["widths"])
    offsets = summary["best_render_offset"]
    assert len(offsets) == 3 and all(-0.6 <= value <= 0.6 for value in offsets.values())


@pytest.mark.slow
def test_window_readings_start_each_window_alone_at_the_true_width(tiny_checkpoints):
    model = ikc.load(4, tiny_checkpoints, estimation_crop=16)
    cases = convergence.make_cases([("coffee", photo("coffee")[:200, :200])], 4, [1.8, 3.2], crop=192)
    at_start = convergence.window_readings(model, cases, count=3, iterations=0)
    assert [(row["width"], len(row["readings"])) for row in at_start] == [(1.8, 3), (3.2, 3)]
    assert all(reading == pytest.approx(row["width"], abs=0.011) for row in at_start for reading in row["readings"])
    corrected = convergence.window_readings(model, cases[:1], count=3, iterations=2)[0]["readings"]
    top, left = ikc.pipeline.textured_windows(ikc.imageio.to_tensor(cases[0].lr), 16, 1)[0]
    alone = model.run(cases[0].lr[top:top + 16, left:left + 16], 2, init_code=model.code_for(ikc.gaussian_kernel(1.8)))
    assert corrected[0] == pytest.approx(alone[-1].kernel_width, abs=1e-3)


def test_cases_can_store_the_lr_image_as_jpeg():
    lossless, compressed = convergence.make_cases([("coffee", photo("coffee")[:130, :150])], 4, [1.8], crop=96,
                                                  qualities=[None, 60])
    assert (lossless.jpeg_quality, compressed.jpeg_quality) == (None, 60)
    assert np.array_equal(compressed.lr, ikc.jpeg_compress(lossless.lr, 60))
    assert np.array_equal(compressed.hr, lossless.hr) and compressed.width == lossless.width == 1.8
