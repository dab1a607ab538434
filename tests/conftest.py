"""Shared fixtures: small photos from scikit-image, tiny checkpoints trained for a few steps, and app.py served."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import ikc
from training import export, train_ikc, train_sftmd
from training.common import TrainConfig

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
STARTUP_SECONDS = 90


def photo(name: str = "astronaut") -> np.ndarray:
    """An RGB uint8 photo that ships with scikit-image (no network)."""
    return getattr(skdata, name)()


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    """A folder of five small training photos."""
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"):
        Image.fromarray(photo(name)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, photo_dir) -> Path:
    """x4 checkpoints of tiny networks trained for a few steps with the real training scripts."""
    root = tmp_path_factory.mktemp("tiny")
    config = TrainConfig(scale=4, nf=8, nb=1, estimator_nf=8, batch_size=2, lr_patch=12, holdout_images=1,
                         validate_every=2, correction_steps=2, warmup_steps=1)
    train_sftmd.train(config, photo_dir, root / "sftmd", None, 3, 1)
    train_ikc.train(config, root / "sftmd", photo_dir, root / "ikc", None, 3, 1)
    out = root / "checkpoints"
    export.export(4, root / "sftmd", root / "ikc", out, photo_dir)
    return out


@dataclass
class AppServer:
    """app.py running as a subprocess on 127.0.0.1."""

    url: str
    pid: int
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_app(checkpoints: Path, workdir: Path, **env: str) -> Iterator[AppServer]:
    """Serve app.py on 127.0.0.1 with the given checkpoints (and extra environment); stop it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "IKC_CHECKPOINTS": str(checkpoints), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(workdir),
           "GRADIO_TEMP_DIR": str(workdir / "gradio"), **env}
    log_path = workdir / "app.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"app.py did not serve within {STARTUP_SECONDS} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield AppServer(url, process.pid, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def connect(url: str, downloads: Path):
    """A gradio_client Client for the app at `url`, saving results under `downloads`."""
    from gradio_client import Client
    return Client(url, verbose=False, analytics_enabled=False, download_files=str(downloads))


@pytest.fixture(scope="module")
def lr_file(tmp_path_factory) -> Path:
    """A 64x64 LR photo, blurred with width 2.0 and shrunk x4."""
    path = tmp_path_factory.mktemp("lr") / "astronaut_lr.png"
    return ikc.save_png(ikc.degrade_image(photo("astronaut")[128:384, 128:384], ikc.gaussian_kernel(2.0), 4), path)


@pytest.fixture(scope="module")
def app_server(tiny_checkpoints, tmp_path_factory) -> Iterator[AppServer]:
    """app.py serving the tiny checkpoints, one server per test module."""
    with running_app(tiny_checkpoints, tmp_path_factory.mktemp("app")) as server:
        yield server


@pytest.fixture(scope="module")
def client(app_server, tmp_path_factory):
    """A gradio_client session with the module's app."""
    return connect(app_server.url, tmp_path_factory.mktemp("downloads"))
