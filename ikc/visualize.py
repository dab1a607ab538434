"""Pictures of kernels for the CLI and the app: a heat map, optionally captioned."""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw


def kernel_picture(kernel: np.ndarray, pixel: int = 8, caption: str | None = None) -> np.ndarray:
    """The kernel as an RGB heat map, each tap a `pixel`-sized square, scaled to its own peak."""
    peak = float(kernel.max()) or 1.0
    colours = colormaps["magma"](np.clip(kernel / peak, 0, 1))[..., :3]
    picture = np.kron((colours * 255).round().astype(np.uint8), np.ones((pixel, pixel, 1), np.uint8))
    if caption is None:
        return picture
    image = Image.fromarray(picture)
    band = Image.new("RGB", (image.width, 18), (255, 255, 255))
    ImageDraw.Draw(band).text((4, 3), caption, fill=(0, 0, 0))
    canvas = Image.new("RGB", (image.width, image.height + band.height))
    canvas.paste(image, (0, 0))
    canvas.paste(band, (0, image.height))
    return np.asarray(canvas)
