"""The degradation model LR = JPEG_q(round8((k * HR)↓s + n)): one implementation for training, evaluation and
the app. The JPEG step is optional (quality None: the LR image is stored losslessly, the model of the paper).

Images are float tensors in [0, 1], shaped (B, C, H, W). Kernels are (B, K, K) or (K, K).
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .imageio import to_pixels, to_tensor

KERNEL_SIZE = 21
JPEG_QUALITIES = (1, 100)  # Pillow's quality range; the web uses about 30-95
BLOCK_NOISE_SIZE = 8  # LR px per side of the regions of block_noise_sigmas
# the 8 Gaussian kernel widths per scale of the paper's test protocol
GAUSSIAN8 = {2: np.linspace(0.80, 1.60, 8), 3: np.linspace(1.35, 2.40, 8), 4: np.linspace(1.8, 3.2, 8)}


def gaussian_kernel(sigma: float, size: int = KERNEL_SIZE) -> np.ndarray:
    """Isotropic Gaussian kernel of width `sigma` on a size x size grid, normalised to sum 1."""
    return anisotropic_gaussian_kernel(sigma, sigma, 0.0, size)


def anisotropic_gaussian_kernel(sigma_x: float, sigma_y: float, angle: float,
                                size: int = KERNEL_SIZE) -> np.ndarray:
    """Gaussian kernel with widths sigma_x, sigma_y along axes rotated by `angle` degrees, sum 1."""
    if not (sigma_x > 0 and sigma_y > 0) or not math.isfinite(sigma_x * sigma_y * angle):
        raise ValueError(f"kernel widths must be positive and finite, got {sigma_x}, {sigma_y}, angle {angle}")
    if size % 2 != 1 or size < 3:
        raise ValueError(f"kernel size must be an odd number >= 3, got {size}")
    theta = math.radians(angle)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    covariance = rotation @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rotation.T
    inverse = np.linalg.inv(covariance)
    radius = size // 2
    ys, xs = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float64)
    points = np.stack([xs, ys], axis=-1)
    exponent = np.einsum("...i,ij,...j->...", points, inverse, points)
    kernel = np.exp(-0.5 * exponent)
    return (kernel / kernel.sum()).astype(np.float32)


def blur(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur each image of the batch with its own kernel (or one shared kernel), reflect padding."""
    batch, channels, height, width = images.shape
    if kernels.dim() == 2:
        kernels = kernels.expand(batch, -1, -1)
    size = kernels.shape[-1]
    pad = size // 2
    if height <= pad or width <= pad:
        raise ValueError(f"image of {height}x{width} px is too small for a {size}x{size} kernel")
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    weight = kernels.to(images).flip(-1, -2).repeat_interleave(channels, dim=0).unsqueeze(1)
    out = F.conv2d(padded.reshape(1, batch * channels, height + 2 * pad, width + 2 * pad), weight,
                   groups=batch * channels)
    return out.reshape(batch, channels, height, width)


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5, as in MATLAB's imresize."""
    ax = x.abs()
    ax2, ax3 = ax ** 2, ax ** 3
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=64)
def _resize_matrix(in_length: int, out_length: int, scale: float, antialias: bool) -> torch.Tensor:
    """Dense (out, in) matrix of MATLAB imresize weights along one axis, symmetric boundary."""
    kernel_width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width /= scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left.unsqueeze(1) + torch.arange(taps, dtype=torch.float64).unsqueeze(0)
    distance = u.unsqueeze(1) - indices
    weights = scale * _cubic(distance * scale) if shrink else _cubic(distance)
    weights = weights / weights.sum(1, keepdim=True)
    mirror = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])
    source = mirror[(indices.long() - 1) % (2 * in_length)]
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, source, weights)
    return matrix.float()


def imresize(images: torch.Tensor, scale: float | None = None,
             size: tuple[int, int] | None = None, antialias: bool = True) -> torch.Tensor:
    """MATLAB-compatible bicubic resize of a (B, C, H, W) batch by `scale` or to `size` (H, W).

    Matches MATLAB's imresize(img, scale, 'bicubic'): a = -0.5 cubic, antialiased when shrinking,
    symmetric padding at the borders. Output is not clamped, like MATLAB's for float input.
    """
    height, width = images.shape[-2:]
    if size is None:
        if scale is None or not scale > 0:
            raise ValueError("imresize needs a positive scale or an output size")
        size = (math.ceil(height * scale), math.ceil(width * scale))
    scale_h = scale if scale is not None else size[0] / height
    scale_w = scale if scale is not None else size[1] / width
    rows = _resize_matrix(height, size[0], scale_h, antialias).to(images)
    cols = _resize_matrix(width, size[1], scale_w, antialias).to(images)
    return rows @ images @ cols.T


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop an (H, W, ...) array so that H and W are multiples of `scale`."""
    height, width = image.shape[:2]
    return image[: height - height % scale, : width - width % scale]


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size part of an (H, W, ...) array (all of it along a side shorter than size)."""
    top, left = max(0, (image.shape[0] - size) // 2), max(0, (image.shape[1] - size) // 2)
    return image[top:top + size, left:left + size]


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round to the nearest 8-bit level, clamped to [0, 1], as saving to PNG does."""
    return torch.round(images.clamp(0, 1) * 255) / 255


def add_noise(images: torch.Tensor, noise_sigma: torch.Tensor | float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Add Gaussian noise with standard deviation `noise_sigma` on the 0-255 scale: one per sample, or a
    (B, 1, H, W) map of one per pixel (see block_noise_sigmas)."""
    sigma = torch.as_tensor(noise_sigma, dtype=images.dtype, device=images.device)
    sigma = (sigma if sigma.dim() == 4 else sigma.reshape(-1, 1, 1, 1)) / 255
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)  # CPU generator
    return images + noise * sigma


def check_jpeg_quality(quality: int | None) -> int | None:
    """`quality` as an int in JPEG_QUALITIES (or None: no compression); ValueError says the range otherwise."""
    if quality is None:
        return None
    low, high = JPEG_QUALITIES
    try:
        whole = not isinstance(quality, bool) and float(quality).is_integer() and low <= float(quality) <= high
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ValueError(f"JPEG quality must be a whole number from {low} to {high} (or none); got {quality!r}")
    return int(float(quality))


def jpeg_compress(pixels: np.ndarray, quality: int) -> np.ndarray:
    """An (H, W, 3) uint8 image saved as JPEG at `quality` and decoded again: Pillow's libjpeg with its
    defaults (4:2:0 chroma at quality < 95), as cameras and web pages store photos."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=check_jpeg_quality(quality))
    with Image.open(buffer) as image:
        return np.asarray(image.convert("RGB")).copy()


def compress_batch(images: torch.Tensor, qualities: Sequence[int | None]) -> torch.Tensor:
    """`jpeg_compress` for each 8-bit image of a (B, 3, H, W) batch in [0, 1] at its own quality (None: as is)."""
    out = images.clone()
    for index, quality in enumerate(qualities):
        if quality is not None:
            pixels = (images[index] * 255).round().byte().permute(1, 2, 0).cpu().numpy()
            decoded = torch.from_numpy(jpeg_compress(pixels, quality)).permute(2, 0, 1)
            out[index] = decoded.to(images.device, images.dtype) / 255
    return out


def block_noise_sigmas(batch: int, height: int, width: int, low: float, high: float, block: int = BLOCK_NOISE_SIZE,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """A (B, 1, H, W) map of noise levels that vary by region: each block x block tile its own sigma, drawn
    uniformly from [low, high] (the seed code's patch noise; IKC itself assumes one level per image)."""
    rows, cols = math.ceil(height / block), math.ceil(width / block)
    sigmas = low + (high - low) * torch.rand(batch, 1, rows, cols, generator=generator)
    return sigmas.repeat_interleave(block, 2).repeat_interleave(block, 3)[..., :height, :width]


def degrade(hr: torch.Tensor, kernels: torch.Tensor, scale: int,
            noise_sigma: torch.Tensor | float = 0.0,
            generator: torch.Generator | None = None,
            jpeg_quality: Sequence[int | None] | int | None = None) -> torch.Tensor:
    """LR = round8((kernel * HR) bicubic-downsampled by `scale` + noise), then saved as JPEG at `jpeg_quality`
    (one for the batch or one per image; None: lossless); HR must be modcropped."""
    height, width = hr.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"HR size {height}x{width} is not a multiple of scale {scale}: modcrop it first")
    lr = imresize(blur(hr, torch.as_tensor(kernels)), size=(height // scale, width // scale))
    if torch.as_tensor(noise_sigma).abs().max() > 0:
        lr = add_noise(lr, noise_sigma, generator)
    lr = quantize(lr)
    qualities = [jpeg_quality] * len(lr) if jpeg_quality is None or isinstance(jpeg_quality, (int, np.integer)) \
        else list(jpeg_quality)
    return lr if all(q is None for q in qualities) else compress_batch(lr, qualities)


def degrade_image(hr_pixels: np.ndarray, kernel: np.ndarray, scale: int, noise_sigma: float = 0.0,
                  seed: int = 0, jpeg_quality: int | None = None, noise_sigma_max: float | None = None) -> np.ndarray:
    """`degrade` for one (H, W, 3) uint8 image: modcrops it, returns the LR uint8 image (seeded noise, then
    JPEG at `jpeg_quality` when given). With `noise_sigma_max`, the noise level varies by region: each
    BLOCK_NOISE_SIZE-px LR block gets its own, drawn from [noise_sigma, noise_sigma_max]."""
    hr = to_tensor(modcrop(hr_pixels, scale))
    generator = torch.Generator().manual_seed(seed)
    noise: torch.Tensor | float = noise_sigma
    if noise_sigma_max is not None:
        if not 0 <= noise_sigma <= noise_sigma_max:
            raise ValueError(f"the noise range must go up: from {noise_sigma:g} to {noise_sigma_max:g}")
        noise = block_noise_sigmas(1, hr.shape[-2] // scale, hr.shape[-1] // scale, noise_sigma, noise_sigma_max,
                                   generator=generator)
    return to_pixels(degrade(hr, torch.as_tensor(kernel, dtype=torch.float32), scale, noise, generator,
                             check_jpeg_quality(jpeg_quality)))


def upscale_bicubic(lr_pixels: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB bicubic upscaling of a uint8 image, rounded to 8 bit: the baseline SR must beat."""
    return to_pixels(imresize(to_tensor(lr_pixels), scale))
