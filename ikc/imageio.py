"""Reading and writing images: any common file to 8-bit RGB, with clear errors and notes.

One loader for the CLI, the app and training, so a file behaves the same everywhere.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)
ACCEPTED = "PNG, JPEG, BMP, TIFF, WebP or GIF"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"})  # ACCEPTED's files
ORIENTATION = 0x0112  # the EXIF tag that says how the camera was held


class ImageError(ValueError):
    """An input that cannot be used as an image; the message says what is wrong and what is accepted."""


@dataclass
class ImageData:
    pixels: np.ndarray  # (H, W, 3) uint8 RGB
    notes: list[str] = field(default_factory=list)  # what was done on purpose (alpha, frames, ...) or found
    jpeg_quality: int | None = None  # the quality a JPEG file was saved at, read from its tables; None if not JPEG


@lru_cache(maxsize=1)
def _libjpeg_tables() -> np.ndarray:
    """(100, 64) luminance quantisation tables libjpeg writes at qualities 1..100."""
    tables = []
    for quality in range(1, 101):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, format="JPEG", quality=quality)
        with Image.open(buffer) as image:
            tables.append(np.asarray(image.quantization[0], np.float64))
    return np.stack(tables)


def jpeg_quality(image: Image.Image) -> int | None:
    """The quality (1-100, libjpeg's scale) whose luminance table is closest to the file's; None if not a JPEG.

    Cameras and editors that use their own tables get the nearest libjpeg quality: an estimate, "about q".
    """
    tables = getattr(image, "quantization", None) if image.format == "JPEG" else None
    if not tables:
        return None
    luminance = np.asarray(tables[min(tables)], np.float64)
    if luminance.size != 64:
        return None
    return int(np.abs(np.log(_libjpeg_tables()) - np.log(luminance)).mean(1).argmin()) + 1


def _open(source: str | Path | bytes, name: str) -> Image.Image:
    if isinstance(source, bytes):
        return Image.open(io.BytesIO(source))
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{name}: the file is empty; expected a {ACCEPTED} image")
    return Image.open(path)


def to_rgb8(image: Image.Image, notes: list[str] | None = None) -> Image.Image:
    """8-bit RGB: 16-bit scaled down, palette expanded, transparency composited on white (said in notes)."""
    notes = [] if notes is None else notes
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        notes.append("16-bit image reduced to 8 bits")
        array = np.asarray(image, np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255, 0, 255).round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("transparent areas were filled with white")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def read_image(source: str | Path | bytes, min_size: int = 1) -> ImageData:
    """Decode a file or bytes into 8-bit RGB, upright per EXIF; raise ImageError on anything unusable."""
    name = "the uploaded data" if isinstance(source, bytes) else Path(source).name
    notes: list[str] = []
    quality = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(source, name) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise ImageError(f"{name}: {width}x{height} px is too large "
                                     f"(at most {MAX_PIXELS // 1_000_000} megapixels are accepted)")
                if getattr(image, "n_frames", 1) > 1:
                    notes.append(f"animated or multi-page image: only the first of {image.n_frames} frames is used")
                    image.seek(0)
                image.load()
                quality = jpeg_quality(image)
                if quality is not None:
                    notes.append(f"JPEG, quality about {quality}")
                if image.getexif().get(ORIENTATION, 1) in range(2, 9):
                    notes.append("turned upright as its EXIF orientation says")
                pixels = np.asarray(to_rgb8(ImageOps.exif_transpose(image), notes), np.uint8).copy()
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file; expected {ACCEPTED}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: decodes to too many pixels (decompression bomb); "
                         f"at most {MAX_PIXELS // 1_000_000} megapixels are accepted") from None
    except ImageError:
        raise
    except Exception as error:  # decoders raise many types on damaged data (OSError, TypeError, struct.error, ...)
        raise ImageError(f"{name}: the image data is damaged or truncated ({error}); "
                         f"expected a complete {ACCEPTED} file") from None
    if min(pixels.shape[:2]) < min_size:
        raise ImageError(f"{name}: {pixels.shape[1]}x{pixels.shape[0]} px is too small "
                         f"(at least {min_size}x{min_size} px needed)")
    return ImageData(pixels, notes, quality)


def load_image(source: str | Path | bytes, min_size: int = 1) -> np.ndarray:
    """Decode to an (H, W, 3) uint8 RGB array; see read_image."""
    return read_image(source, min_size).pixels


def save_png(pixels: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 array as a lossless PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 to a (1, 3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.require(pixels, requirements=["C", "W"])).permute(2, 0, 1).unsqueeze(0).float() / 255


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float tensor in [0, 1] to (H, W, 3) uint8, rounded."""
    return (images[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
