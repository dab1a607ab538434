"""The held-out crops a run validates on, and SFTMD's score on them."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ikc.archs import compression_level
from ikc.degradation import centre_crop, compress_batch, degrade, gaussian_kernel, modcrop
from ikc.imageio import load_image
from ikc.kernel_code import KernelPCA, encode
from ikc.metrics import psnr_y_torch

from .config import TrainConfig
from .dataset import list_images, split_holdout


class ValidationCrop(NamedTuple):
    """One held-out crop as a run validates on it."""
    lr: torch.Tensor  # (1, 3, h, w), lossless or saved as JPEG
    hr: torch.Tensor  # (1, 3, H, W)
    code: torch.Tensor  # (1, CODE_LENGTH) the true kernel's code, noise 0
    compression: torch.Tensor  # (1,) the LR's compression level (ikc.archs.compression_level), 0 lossless


def validation_set(data_dir: Path, config: TrainConfig, pca: KernelPCA, crop: int = 192) -> list[ValidationCrop]:
    """Centre crops of the held-out photos at fixed widths, lossless and/or saved as JPEG at each quality of
    `validation_jpeg` (the same LR crop compressed: degrade's last step), each with its true code and compression
    level."""
    _, held = split_holdout(list_images(data_dir), config.holdout_images)
    crops = []
    for path in held:
        image = load_image(path)
        hr_pixels = modcrop(centre_crop(image, crop), config.scale)
        hr = torch.from_numpy(np.ascontiguousarray(hr_pixels)).permute(2, 0, 1)[None].float() / 255
        for sigma in config.validation_sigmas:
            kernel = gaussian_kernel(sigma)
            lr = degrade(hr, torch.from_numpy(kernel), config.scale)
            code = torch.from_numpy(encode(pca, kernel[None], 0.0))
            crops += [ValidationCrop(compress_batch(lr, [quality]), hr, code, torch.tensor([compression_level(quality)]))
                      for quality in config.validation_qualities()]
    return crops


def mean_psnr(outputs: list[torch.Tensor], crops: list[ValidationCrop], scale: int) -> float:
    """Mean PSNR-Y (border = scale) of outputs against the validation HR crops."""
    return float(np.mean([psnr_y_torch((o.cpu() * 255).round() / 255, crop.hr, scale).item()
                          for o, crop in zip(outputs, crops)]))
