"""Shared fixtures: small photos from scikit-image and tiny checkpoints trained for a few steps."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from training import export, train_ikc, train_sftmd
from training.common import TrainConfig

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


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
