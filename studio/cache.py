"""Gradio's image cache, made safe for visitors who get the same picture at the same moment."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gradio import processing_utils
from PIL import Image


def save_pil_to_cache(img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """Gradio's `save_pil_to_cache`, written under a temporary name and renamed into place, never rewritten.

    Gradio names a cached image by the hash of its bytes and rewrites the file in place, so two sessions with
    the same output (two visitors on one example) could be sent a file that was just truncated by the other's
    write (measured: "peer closed connection ... received 0 bytes" in 1 of 8 concurrent restores).
    """
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = folder / f"{name}.{format}"
    if target.exists():
        os.utime(target)  # `delete_cache` ages files by their time: a copy handed out again starts afresh
    else:
        handle, staging = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(staging, target)
        finally:  # a write that failed (disk full) leaves no hidden staging file behind
            Path(staging).unlink(missing_ok=True)
    return str(target.resolve())


def use_atomic_image_cache() -> None:
    """Route every image Gradio caches (Image, Gallery, ImageSlider outputs) through `save_pil_to_cache`."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
