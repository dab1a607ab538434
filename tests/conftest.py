"""Shared fixtures: small photos from scikit-image, tiny checkpoints trained for a few steps, and app.py served."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import ikc
from evaluation.serve import AppServer, running_app
from training import export, train_ikc, train_sftmd
from training.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


SERVED = {"app_server", "client", "app_url", "browser_page"}  # fixtures that start the app or a browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` every test that needs a running app or a browser, beside those marked by hand, so that
    `pytest -m "not slow"` is the everyday tier."""
    for item in items:
        if SERVED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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
    """x4 checkpoints of tiny networks trained for a few steps with the real training scripts, with an SFTMD for
    JPEG inputs (quality 40-80)."""
    root = tmp_path_factory.mktemp("tiny")
    config = TrainConfig(scale=4, nf=8, nb=1, estimator_nf=8, batch_size=2, lr_patch=12, holdout_images=1,
                         validate_every=2, correction_steps=2, warmup_steps=1)
    train_sftmd.train(config, photo_dir, root / "sftmd", None, 3, 1)
    train_ikc.train(config, root / "sftmd", photo_dir, root / "ikc", None, 3, 1)
    jpeg = replace(config, jpeg_fraction=1.0, jpeg_min=40, jpeg_max=80, validation_jpeg=[60], validate_lossless=False)
    train_sftmd.train(jpeg, photo_dir, root / "sftmd_jpeg", None, 2, 1)
    out = root / "checkpoints"
    export.export(4, root / "sftmd", root / "ikc", out, photo_dir, jpeg_sftmd_run=root / "sftmd_jpeg")
    return out


def with_jpeg_estimators(tiny_checkpoints: Path, photo_dir: Path, root: Path, against: str = "sftmd_x4") -> Path:
    """A copy of the tiny checkpoints in `root` plus a Predictor and Corrector fine-tuned on JPEG inputs (quality
    40-80) against the SFTMD checkpoint `against` (the lossless one, or "sftmd_x4_jpeg")."""
    config = TrainConfig(scale=4, nf=8, nb=1, estimator_nf=8, batch_size=2, lr_patch=12, holdout_images=1,
                         validate_every=2, correction_steps=2, warmup_steps=1, jpeg_fraction=1.0, jpeg_min=40,
                         jpeg_max=80, learning_rate=1e-2)
    train_ikc.train(config, tiny_checkpoints / f"{against}.safetensors", photo_dir, root / "run", None, 5, 1,
                    from_checkpoint=tiny_checkpoints / "ikc_x4.safetensors")
    folder = shutil.copytree(tiny_checkpoints, root / "checkpoints")
    export.export(4, tiny_checkpoints / "sftmd_x4.safetensors", None, folder, photo_dir, jpeg_ikc_run=root / "run")
    return folder


@pytest.fixture(scope="session")
def jpeg_estimators_checkpoints(tiny_checkpoints, photo_dir, tmp_path_factory):
    """The tiny checkpoints plus a Predictor and Corrector fine-tuned on JPEG inputs against the lossless SFTMD."""
    return with_jpeg_estimators(tiny_checkpoints, photo_dir, tmp_path_factory.mktemp("jpeg_estimators"))


def connect(url: str, downloads: Path):
    """A gradio_client Client for the app at `url`, saving results under `downloads`."""
    from gradio_client import Client
    return Client(url, verbose=False, analytics_enabled=False, download_files=str(downloads))


@pytest.fixture(scope="module")
def lr_file(tmp_path_factory) -> Path:
    """A 64x64 LR photo, blurred with width 2.0 and shrunk x4."""
    path = tmp_path_factory.mktemp("lr") / "astronaut_lr.png"
    return ikc.save_png(ikc.degrade_image(photo("astronaut")[128:384, 128:384], ikc.gaussian_kernel(2.0), 4), path)


@pytest.fixture(scope="session")
def app_server(tiny_checkpoints, tmp_path_factory) -> Iterator[AppServer]:
    """app.py serving the tiny checkpoints, one server for the test session (variants start their own)."""
    with running_app(tiny_checkpoints, tmp_path_factory.mktemp("app")) as server:
        yield server


@pytest.fixture(scope="module")
def client(app_server, tmp_path_factory):
    """A gradio_client session with the module's app."""
    return connect(app_server.url, tmp_path_factory.mktemp("downloads"))
