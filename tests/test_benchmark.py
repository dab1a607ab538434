"""The speed benchmark runs its three cases end to end and reports them as a table (no timing asserted)."""
import json

import pytest

from evaluation import benchmark


@pytest.mark.slow
def test_benchmark_times_every_case_and_prints_the_table(tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "speed.json"
    benchmark.main(["--sizes", "16,24", "--iterations", "2", "--repeats", "1", "--checkpoints",
                    str(tiny_checkpoints), "--json", str(out)])
    results = json.loads(out.read_text())
    assert sorted((r["size"], r["case"]) for r in results) == sorted(
        (size, case) for size in (16, 24) for case in benchmark.CASES)
    # each case in its own process: its peak holds torch and one model (hundreds of MiB, not the KiB that
    # ru_maxrss counts in, nor the GiB of a leak), and its time is a finite measurement
    assert all(100 < r["peak_mib"] < 4000 and 0 < r["seconds"] < 600 for r in results)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| 16x16", "| 24x24"))]
    assert len(rows) == 2 and all(row.count("|") == 8 for row in rows)


def test_large_sizes_skip_the_naive_loop_in_the_table():
    results = [{"case": "ours", "size": 1024, "seconds": 6.0, "peak_mib": 2000.0},
               {"case": "floor", "size": 1024, "seconds": 4.0, "peak_mib": 1900.0}]
    row = benchmark.table(results, 7, 4).splitlines()[-1]
    assert row == "| 1024x1024 | not run | 6.00 s | 4.00 s | - | 1.50 | - / 2000 / 1900 |"


def test_benchmark_images_have_the_asked_size():
    assert benchmark.test_image(300, 4).shape == (300, 300, 3)
    assert benchmark.test_image(20, 3).shape == (20, 20, 3)
