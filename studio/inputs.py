"""Input checks: numbers and uploads as the page or the API send them, each bad one a clear ValueError;
the photo to restore (whole and downscaled, or a region at native resolution)."""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder
from PIL import Image, ImageDraw

import ikc
from ikc.pipeline import MIN_LR_SIZE

from .settings import MAX_BLOCK_NOISE, MAX_RESULT_PIXELS, MAX_RESULT_SIDE, PICKER_SIDE, REGION, WIDTH_LIMITS


@contextmanager
def user_errors() -> Iterator[None]:
    """Show errors a user can cause (bad file, bad value, missing checkpoint) as a clear message."""
    try:
        yield
    except gr.Error:
        raise
    except (ikc.ImageError, ikc.CheckpointError, ValueError) as error:
        raise gr.Error(str(error), print_exception=False) from None


def checked_number(name: str, value: Any, low: float, high: float) -> float:
    """`value` as a float within [low, high]; ValueError naming the input otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be from {low:g} to {high:g}, got {number:g}")
    return number


def checked_whole(name: str, value: Any, low: int, high: int) -> int:
    """`value` as a whole number within [low, high]."""
    number = checked_number(name, value, low, high)
    if number != int(number):
        raise ValueError(f"{name} must be a whole number, got {number:g}")
    return int(number)


def checked_scale(value: Any) -> int:
    """`value` as one of the scales IKC supports."""
    scale = checked_whole("scale", value, min(ikc.SCALES), max(ikc.SCALES))
    if scale not in ikc.SCALES:
        raise ValueError(f"scale must be one of {', '.join(map(str, ikc.SCALES))}, got {scale}")
    return scale


def upload_path(payload: Any) -> str:
    """Server-side path of an uploaded image; API callers can name any path, so only uploads are accepted."""
    if payload is None or payload == {}:
        raise ValueError("no image: upload a photo or pick an example first")
    path = payload.get("path") if isinstance(payload, dict) else None
    if not isinstance(path, str) or not path:
        raise ValueError(f"image must be an uploaded file (from Python: gradio_client.handle_file(path)), "
                         f"got {payload!r:.80}")
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(get_upload_folder())):
        raise ValueError("image: only files uploaded to this app are read; send yours with "
                         "gradio_client.handle_file(path)")
    return str(real)


def upload_stem(payload: Any) -> str:
    """A file-name-safe stem of the uploaded file's original name."""
    name = payload.get("orig_name") if isinstance(payload, dict) else None
    return re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name or "photo").stem)[:40] or "photo"


JPEG_KEPT_FACTOR = 0.5  # a JPEG downscaled more than this no longer shows its 8x8 blocks: it counts as lossless


def read_photo(payload: Any, max_pixels: int, min_size: int) -> ikc.ImageData:
    """Decode an upload with ikc.read_image; an image over `max_pixels` is downscaled, with a note saying so."""
    image = ikc.read_image(upload_path(payload), min_size=min_size)
    height, width = image.pixels.shape[:2]
    if height * width <= max_pixels:
        return image
    factor = (max_pixels / (height * width)) ** 0.5
    size = (max(min_size, int(width * factor)), max(min_size, int(height * factor)))
    pixels = np.asarray(Image.fromarray(image.pixels).resize(size, Image.Resampling.LANCZOS))
    notes = [f"downscaled from {width}x{height} to {size[0]}x{size[1]} px, so that the result stays within "
             f"{MAX_RESULT_PIXELS:,} px ({MAX_RESULT_SIDE}x{MAX_RESULT_SIDE})"]
    quality = image.jpeg_quality
    if quality is not None and factor < JPEG_KEPT_FACTOR:
        quality = None
        notes.append("its JPEG blocks shrank with it, so it is restored as a lossless image")
    return ikc.ImageData(pixels, image.notes + notes, quality)


def region_box(height: int, width: int, side: int, centre: tuple[float, float] | None) -> tuple[int, int, int, int]:
    """(top, left, rows, columns) of a square region of `side` px (smaller if the photo is), centred at the
    fractions `centre` = (x, y) of the photo (its middle when None) and moved inside it."""
    rows, columns = min(side, height), min(side, width)
    fx, fy = centre if centre is not None else (0.5, 0.5)
    top = min(max(0, round(fy * height - rows / 2)), height - rows)
    left = min(max(0, round(fx * width - columns / 2)), width - columns)
    return top, left, rows, columns


def region_view(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The photo at most PICKER_SIDE px large, with the region outlined, for picking it by a click."""
    image = Image.fromarray(pixels)
    factor = min(1.0, PICKER_SIDE / max(image.size))
    image = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                         Image.Resampling.LANCZOS)
    top, left, rows, columns = (round(v * factor) for v in box)
    draw = ImageDraw.Draw(image)
    for offset, colour in ((0, (255, 255, 255)), (2, (220, 30, 30))):
        draw.rectangle((left + offset, top + offset, left + columns - 1 - offset, top + rows - 1 - offset),
                       outline=colour, width=2)
    return np.asarray(image)


def picked_centre(height: int, width: int, click: tuple[int, int]) -> tuple[float, float]:
    """A click at pixel `click` = (x, y) of the picker's picture of a height x width photo, as fractions."""
    factor = min(1.0, PICKER_SIDE / max(height, width))
    return (min(1.0, click[0] / max(1, round(width * factor))), min(1.0, click[1] / max(1, round(height * factor))))


def region_of(photo: ikc.ImageData, factor: int, centre: tuple[float, float] | None) -> ikc.ImageData:
    """The region of a decoded photo that Restore enlarges at native resolution: as large as the pixel limit
    allows at this scale, centred at `centre` (fractions of the photo)."""
    height, width = photo.pixels.shape[:2]
    top, left, rows, columns = region_box(height, width, MAX_RESULT_SIDE // factor, centre)
    note = f"a {columns}x{rows} px region at ({left}, {top}) of the {width}x{height} px photo, at native resolution"
    return ikc.ImageData(photo.pixels[top:top + rows, left:left + columns].copy(), photo.notes + [note],
                         photo.jpeg_quality)


def restore_input(payload: Any, factor: int, mode: str, centre: tuple[float, float] | None) -> ikc.ImageData:
    """Restore's LR image: the whole photo downscaled to the pixel limit, or a region of it at native resolution."""
    if mode != REGION:
        return read_photo(payload, MAX_RESULT_PIXELS // factor ** 2, MIN_LR_SIZE)
    return region_of(ikc.read_image(upload_path(payload), min_size=MIN_LR_SIZE), factor, centre)


def notes_line(notes: list[str]) -> str:
    """The notes on an input as one Markdown line (empty when there are none)."""
    return "**Note:** " + "; ".join(notes) + "." if notes else ""


def pixel_digest(pixels: np.ndarray) -> str:
    """A fingerprint of an image's pixels, to recognise a built-in example whatever its file is called."""
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes() + str(pixels.shape).encode()).hexdigest()


def checked_start(value: Any) -> float | None:
    """The width IKC starts from: None (0 or empty: the Predictor's guess) or a width the labs offer."""
    if value is None or value == "" or value == 0:
        return None
    width = checked_number("starting width", value, 0, WIDTH_LIMITS[1])
    if width < WIDTH_LIMITS[0]:
        raise ValueError(f"starting width must be 0 (the Predictor's guess) or {WIDTH_LIMITS[0]:g}-"
                         f"{WIDTH_LIMITS[1]:g}, got {width:g}")
    return width


def checked_jpeg_quality(value: Any) -> int | None:
    """A JPEG quality from the page or the API: None, empty or 0 mean none (lossless); else 1-100."""
    if value is None or value == "" or value == 0:
        return None
    return checked_whole("JPEG quality", value, *ikc.JPEG_QUALITIES)


def checked_noise_max(noise: float, noise_max: Any) -> float | None:
    """The highest level of region-varying noise (None: one level for the whole image), at least `noise`."""
    if noise_max is None or noise_max == "":
        return None
    return checked_number("highest block noise sigma", noise_max, noise, MAX_BLOCK_NOISE)


def photo_input(label: str, elem_id: str, height: int) -> gr.Image:
    """An image upload whose events get the raw file, so that ikc.read_image judges every file."""
    return gr.Image(label=label, type="filepath", image_mode=None, format="png", sources=["upload", "clipboard"],
                    height=height, elem_id=elem_id)

