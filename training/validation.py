"""The held-out crops a run validates on, and SFTMD's score on them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ikc.archs import compression_level
from ikc.degradation import centre_crop, compress_batch, degrade, gaussian_kernel, modcrop
from ikc.imageio import load_image
from ikc.kernel_code import KernelPCA, encode
from ikc.metrics import psnr_y_torch

from .config import TrainConfig
from .dataset import list_images, split_holdout


def validation_set(data_dir: Path, config: TrainConfig, crop: int = 192) -> list[tuple[torch.Tensor, torch.Tensor,
                                                                                       torch.Tensor]]:
    """Held-out (LR, HR, true code) triples: centre crops of the held-out photos at fixed widths, lossless and/or
    saved as JPEG at each quality of `validation_jpeg` (the same LR crop compressed: degrade's last step)."""
    _, held = split_holdout(list_images(data_dir), config.holdout_images)
    triples = []
    for path in held:
        image = load_image(path)
        hr_pixels = modcrop(centre_crop(image, crop), config.scale)
        hr = torch.from_numpy(np.ascontiguousarray(hr_pixels)).permute(2, 0, 1)[None].float() / 255
        for sigma in config.validation_sigmas:
            kernel = gaussian_kernel(sigma)
            lr = degrade(hr, torch.from_numpy(kernel), config.scale)
            triples += [(compress_batch(lr, [quality]), hr, kernel) for quality in config.validation_qualities()]
    return triples


def validation_codes(triples, pca: KernelPCA) -> list[torch.Tensor]:
    """True codes (noise 0) for the validation triples."""
    return [torch.from_numpy(encode(pca, kernel[None], 0.0)) for _, _, kernel in triples]


def validation_levels(triples, config: TrainConfig) -> list[torch.Tensor]:
    """Each validation triple's compression level (B=1), in validation_set's order (qualities innermost)."""
    qualities = config.validation_qualities()
    return [torch.tensor([compression_level(qualities[index % len(qualities)])]) for index in range(len(triples))]


def mean_psnr(outputs: list[torch.Tensor], triples, scale: int) -> float:
    """Mean PSNR-Y (border = scale) of outputs against the validation HR crops."""
    return float(np.mean([psnr_y_torch((o.cpu() * 255).round() / 255, hr, scale).item()
                          for o, (_, hr, _) in zip(outputs, triples)]))
