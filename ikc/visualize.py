"""Pictures for the CLI and the app: kernel heat maps, captions readable on a projector, step animations."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

CAPTION_SIZE = 16  # px: readable on a projector (the old bitmap font was 11 px high)


def captioned(picture: np.ndarray, caption: str, size: int = CAPTION_SIZE) -> np.ndarray:
    """`picture` with `caption` (one or more lines) in black on a white band under it, as wide as the picture."""
    font = ImageFont.load_default(size=size)
    image = Image.fromarray(picture)
    lines = caption.split("\n")
    band = Image.new("RGB", (image.width, len(lines) * (size + 4) + 8), (255, 255, 255))
    ImageDraw.Draw(band).multiline_text((6, 4), caption, fill=(0, 0, 0), font=font, spacing=4)
    canvas = Image.new("RGB", (image.width, image.height + band.height))
    canvas.paste(image, (0, 0))
    canvas.paste(band, (0, image.height))
    return np.asarray(canvas)


def kernel_picture(kernel: np.ndarray, pixel: int = 8, caption: str | None = None) -> np.ndarray:
    """The kernel as an RGB heat map, each tap a `pixel`-sized square, scaled to its own peak."""
    peak = float(kernel.max()) or 1.0
    colours = colormaps["magma"](np.clip(kernel / peak, 0, 1))[..., :3]
    picture = np.kron((colours * 255).round().astype(np.uint8), np.ones((pixel, pixel, 1), np.uint8))
    return picture if caption is None else captioned(picture, caption)


def step_frame(sr: np.ndarray, kernel: np.ndarray, caption: str, height: int = 360) -> np.ndarray:
    """One frame of a step animation: the SR image scaled to `height` px beside the kernel picture, captioned."""
    image = Image.fromarray(sr)
    image = image.resize((max(1, round(image.width * height / image.height)), height), Image.Resampling.LANCZOS)
    heat = Image.fromarray(kernel)
    canvas = Image.new("RGB", (image.width + heat.width + 12, height), (255, 255, 255))
    canvas.paste(image, (0, 0))
    canvas.paste(heat, (image.width + 12, (height - heat.height) // 2))
    return captioned(np.asarray(canvas), caption, size=20)


def save_animation(frames: list[np.ndarray], path: Path, seconds_per_frame: float = 1.0) -> Path:
    """The frames as a looping animated GIF (each padded with white to the largest frame)."""
    height, width = max(f.shape[0] for f in frames), max(f.shape[1] for f in frames)
    images = []
    for frame in frames:
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        canvas.paste(Image.fromarray(frame), (0, 0))
        images.append(canvas)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(seconds_per_frame * 1000), loop=0)
    return path
