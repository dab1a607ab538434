"""The command-line contract: python -m ikc INPUT -o OUTPUT [--scale] [--iterations] [--trajectory]."""
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

import ikc
from ikc.cli import main

from .conftest import REPO, photo


@pytest.fixture()
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    lr = ikc.degrade_image(photo("chelsea")[:120, :160], ikc.gaussian_kernel(2.0), 4)
    Image.fromarray(lr).save(folder / "cat.png")
    Image.fromarray(lr).save(folder / "cat_copy.jpg", quality=95)
    (folder / "notes.png").write_text("this is text, not an image")
    Image.fromarray(lr[:5, :5]).save(folder / "tiny.png")
    return folder


def test_folder_processes_good_files_reports_bad_ones_and_fails(inputs, tmp_path, tiny_checkpoints, capsys):
    out = tmp_path / "out"
    code = main([str(inputs), "-o", str(out), "--iterations", "2", "--checkpoints", str(tiny_checkpoints)])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["cat.png", "cat_copy.png"]
    assert Image.open(out / "cat.png").size == (160, 120)
    assert "notes.png: not an image file" in captured.err and "tiny.png" in captured.err
    assert "2 of 4 file(s) failed" in captured.err
    assert "estimated kernel width" in captured.out and "noise level" in captured.out


def test_single_file_with_trajectory(inputs, tmp_path, tiny_checkpoints):
    target, trajectory = tmp_path / "result.png", tmp_path / "steps"
    code = main([str(inputs / "cat.png"), "-o", str(target), "--iterations", "2", "--trajectory",
                 str(trajectory), "--checkpoints", str(tiny_checkpoints)])
    assert code == 0 and Image.open(target).format == "PNG"
    steps = json.loads((trajectory / "cat" / "steps.json").read_text())
    assert [s["step"] for s in steps] == [0, 1, 2]
    assert all(len(s["code"]) == ikc.CODE_LENGTH and s["kernel_width"] > 0 for s in steps)
    assert {p.name for p in (trajectory / "cat").glob("*.png")} == {
        f"{kind}_{i:02d}.png" for kind in ("step", "kernel") for i in range(3)}
    with Image.open(trajectory / "cat" / "steps.gif") as animation:
        assert animation.n_frames == 3


def test_missing_checkpoint_and_missing_input_are_one_line_errors(inputs, tmp_path, tiny_checkpoints, capsys):
    assert main([str(inputs / "cat.png"), "-o", str(tmp_path / "x.png"), "--scale", "3",
                 "--checkpoints", str(tiny_checkpoints)]) == 2
    assert "no checkpoint for x3" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing.png"), "-o", str(tmp_path / "x.png"),
                 "--checkpoints", str(tiny_checkpoints)]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_help_explains_the_contract():
    result = subprocess.run([sys.executable, "-m", "ikc", "--help"], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ}, timeout=120)
    assert result.returncode == 0
    for word in ("--scale", "--iterations", "--trajectory", "folder", "steps.json"):
        assert word in result.stdout
