"""The kernel code h: 10 PCA coefficients of the 21x21 blur kernel plus one noise-level entry.

Unlike the official code, the PCA is centred and each coefficient is divided by its standard
deviation, so every code entry has unit scale; the mean is kept so a code can be drawn back
into a kernel. The fit is seeded and the matrices travel inside each checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .degradation import KERNEL_SIZE, gaussian_kernel

PCA_COMPONENTS = 10
NOISE_CODE_SCALE = 25.0  # the noise entry is sigma (0-255 scale) / 25, so sigma 25 -> 1.0
CODE_LENGTH = PCA_COMPONENTS + 1
WIDTH_GRID = np.round(np.arange(0.10, 8.0001, 0.01), 2)


@dataclass(frozen=True)
class KernelPCA:
    """Centred, whitened PCA of flattened kernels: code = (k - mean) @ matrix / scale."""

    matrix: np.ndarray  # (K*K, PCA_COMPONENTS), orthonormal columns
    mean: np.ndarray  # (K*K,)
    scale: np.ndarray  # (PCA_COMPONENTS,)

    @property
    def kernel_size(self) -> int:
        return int(round(self.mean.size ** 0.5))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The three arrays as named float32 tensors, for saving in a checkpoint."""
        return {name: torch.from_numpy(np.ascontiguousarray(getattr(self, name), np.float32))
                for name in ("matrix", "mean", "scale")}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "KernelPCA":
        """Rebuild from the tensors written by `tensors()`."""
        return cls(**{name: tensors[name].float().numpy() for name in ("matrix", "mean", "scale")})


def fit_pca(sigma_min: float = 0.2, sigma_max: float = 4.0, count: int = 30000,
            seed: int = 0, size: int = KERNEL_SIZE) -> KernelPCA:
    """Fit the PCA on `count` isotropic kernels with widths drawn uniformly from the training range."""
    rng = np.random.default_rng(seed)
    sigmas = rng.uniform(sigma_min, sigma_max, count)
    kernels = np.stack([gaussian_kernel(s, size).ravel() for s in sigmas]).astype(np.float64)
    mean = kernels.mean(0)
    _, _, vt = np.linalg.svd(kernels - mean, full_matrices=False)
    matrix = vt[:PCA_COMPONENTS].T
    matrix *= np.sign(matrix.sum(0, keepdims=True) + 1e-12)  # a fixed sign per component
    scale = ((kernels - mean) @ matrix).std(0)
    return KernelPCA(matrix.astype(np.float32), mean.astype(np.float32), scale.astype(np.float32))


def encode(pca: KernelPCA, kernels: np.ndarray, noise_sigma: np.ndarray | float = 0.0) -> np.ndarray:
    """Codes (..., CODE_LENGTH) of kernels (..., K, K) with noise sigma on the 0-255 scale."""
    flat = kernels.reshape(*kernels.shape[:-2], -1).astype(np.float32)
    pcs = (flat - pca.mean) @ pca.matrix / pca.scale
    noise = np.broadcast_to(np.asarray(noise_sigma, np.float32) / NOISE_CODE_SCALE, pcs.shape[:-1])
    return np.concatenate([pcs, noise[..., None]], axis=-1).astype(np.float32)


def decode_kernel(pca: KernelPCA, codes: np.ndarray) -> np.ndarray:
    """Kernels (..., K, K) drawn back from codes; clipped at 0 and renormalised to sum 1."""
    pcs = np.asarray(codes, np.float32)[..., :PCA_COMPONENTS]
    flat = np.maximum(pca.mean + (pcs * pca.scale) @ pca.matrix.T, 0)
    flat = flat / np.maximum(flat.sum(-1, keepdims=True), 1e-8)
    return flat.reshape(*flat.shape[:-1], pca.kernel_size, pca.kernel_size)


def spread_projection(pca: KernelPCA) -> tuple[float, np.ndarray]:
    """(offset, weights) with spread(code) = offset + code[:10] @ weights, where spread is the kernel's
    second moment E[x^2 + y^2] / 2 (sigma^2 for a Gaussian): linear in the code, so usable in a loss."""
    radius = pca.kernel_size // 2
    ys, xs = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    r2 = ((xs ** 2 + ys ** 2) / 2).ravel().astype(np.float64)
    return float(pca.mean @ r2), (pca.scale[:, None] * pca.matrix.T.astype(np.float64)) @ r2


def decode_noise(codes: np.ndarray) -> np.ndarray:
    """Noise sigma on the 0-255 scale stored in codes (never negative)."""
    return np.maximum(np.asarray(codes, np.float32)[..., PCA_COMPONENTS] * NOISE_CODE_SCALE, 0)


@lru_cache(maxsize=4)
def _width_bank(size: int) -> np.ndarray:
    """Flattened isotropic kernels for every width on WIDTH_GRID."""
    return np.stack([gaussian_kernel(float(s), size).ravel() for s in WIDTH_GRID])


def _nearest_width_index(kernels: np.ndarray) -> np.ndarray:
    """Index on WIDTH_GRID of the isotropic Gaussian closest in L2 to each kernel (..., K, K)."""
    size = kernels.shape[-1]
    flat = kernels.reshape(-1, size * size)
    distances = ((flat[:, None, :] - _width_bank(size)[None]) ** 2).sum(-1)
    return distances.argmin(1).reshape(kernels.shape[:-2])


def nearest_gaussian_width(kernels: np.ndarray) -> np.ndarray:
    """Width (sigma) of the isotropic Gaussian closest in L2 to each kernel (..., K, K): the Gaussian a code is
    moved onto (nearest_gaussian_code). On a kernel off the Gaussians it follows the peak and reads narrow."""
    return WIDTH_GRID[_nearest_width_index(kernels)]


def _normalised_marginal_offsets(kernels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each kernel (..., K, K) clipped at 0 and summed to 1, with its rows' and columns' offsets from its centre of
    mass (..., K, 1) and (..., 1, K)."""
    kernels = np.clip(np.asarray(kernels, np.float64), 0, None)
    kernels = kernels / kernels.sum(axis=(-2, -1), keepdims=True)
    positions = np.arange(kernels.shape[-1], dtype=np.float64)
    rows = positions - (kernels.sum(-1) * positions).sum(-1)[..., None]
    cols = positions - (kernels.sum(-2) * positions).sum(-1)[..., None]
    return kernels, rows[..., :, None], cols[..., None, :]


def _kernel_std(kernels: np.ndarray) -> np.ndarray:
    """Standard deviation of each kernel (..., K, K) about its centre of mass, sqrt((var_x + var_y) / 2)."""
    kernels, rows, cols = _normalised_marginal_offsets(kernels)
    return np.sqrt((kernels * (rows ** 2 + cols ** 2)).sum((-2, -1)) / 2)


def _kernel_mean_radius(kernels: np.ndarray) -> np.ndarray:
    """Mean distance of each kernel's (..., K, K) mass from its centre of mass."""
    kernels, rows, cols = _normalised_marginal_offsets(kernels)
    return (kernels * np.sqrt(rows ** 2 + cols ** 2)).sum((-2, -1))


@lru_cache(maxsize=4)
def _bank_std(size: int) -> np.ndarray:
    """_kernel_std of every Gaussian on WIDTH_GRID (rises with the width: sampling and the kernel's edge bend it)."""
    return _kernel_std(_width_bank(size).reshape(-1, size, size))


def estimate_width(kernels: np.ndarray) -> np.ndarray:
    """Width of each kernel (..., K, K): the sigma of the isotropic Gaussian with the same standard deviation, so
    sigma for a Gaussian. It reads a kernel off the Gaussians (a sharp core with a wide skirt, as the Correctors'
    updates make) by how far it blurs, where the nearest Gaussian in L2 follows its peak and reads it narrow."""
    kernels = np.asarray(kernels)
    return np.round(np.interp(_kernel_std(kernels), _bank_std(kernels.shape[-1]), WIDTH_GRID), 2)


@lru_cache(maxsize=4)
def _bank_mean_radius(size: int) -> np.ndarray:
    """_kernel_mean_radius of every Gaussian on WIDTH_GRID."""
    return _kernel_mean_radius(_width_bank(size).reshape(-1, size, size))


def _mean_radius_index(kernels: np.ndarray) -> np.ndarray:
    """Index on WIDTH_GRID of the isotropic Gaussian whose mass lies as far from its centre on average as each
    kernel's (..., K, K). Decoding is linear, so a blend of Gaussians (what an unsure Corrector's update decodes to)
    reads as the mean of their widths: between the L2-nearest one (its peak) and estimate_width (the RMS)."""
    radius = _kernel_mean_radius(kernels)
    return np.abs(radius[..., None] - _bank_mean_radius(kernels.shape[-1])).argmin(-1)


def mean_radius_width(kernels: np.ndarray) -> np.ndarray:
    """Width of the Gaussian whose mass lies as far from its centre on average as each kernel's (..., K, K): the
    Gaussian a stalled code moves onto (mean_radius_gaussian_code)."""
    return WIDTH_GRID[_mean_radius_index(np.asarray(kernels))]


def _onto_gaussians(pca: KernelPCA, codes: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Codes whose kernel part is replaced by the code of the Gaussian at each WIDTH_GRID index, noise kept."""
    size = pca.kernel_size
    projected = encode(pca, _width_bank(size)[indices].reshape(*codes.shape[:-1], size, size))
    projected[..., PCA_COMPONENTS] = codes[..., PCA_COMPONENTS]
    return projected


def nearest_gaussian_code(pca: KernelPCA, codes: np.ndarray) -> np.ndarray:
    """Codes (..., CODE_LENGTH) moved onto the isotropic Gaussians the networks were trained on: each kernel part
    replaced by the code of the Gaussian nearest its kernel (the one nearest_gaussian_width names), the noise entry
    kept."""
    codes = np.asarray(codes, np.float32)
    return _onto_gaussians(pca, codes, _nearest_width_index(decode_kernel(pca, codes)))


def mean_radius_gaussian_code(pca: KernelPCA, codes: np.ndarray) -> np.ndarray:
    """Codes (..., CODE_LENGTH) moved onto the Gaussian whose mean radius is their kernel's (_mean_radius_index):
    a code the L2-nearest Gaussian pins to a sharp peak moves by how far its kernel blurs."""
    codes = np.asarray(codes, np.float32)
    return _onto_gaussians(pca, codes, _mean_radius_index(decode_kernel(pca, codes)))


def nearest_gaussian_code_torch(pca: KernelPCA, codes: torch.Tensor) -> torch.Tensor:
    """nearest_gaussian_code for a tensor of codes, returned on the tensor's device (the loop's and training's twin)."""
    return torch.from_numpy(nearest_gaussian_code(pca, codes.detach().cpu().numpy())).to(codes.device)


def mean_radius_gaussian_code_torch(pca: KernelPCA, codes: torch.Tensor) -> torch.Tensor:
    """mean_radius_gaussian_code for a tensor of codes, on the tensor's device (the loop's twin)."""
    return torch.from_numpy(mean_radius_gaussian_code(pca, codes.detach().cpu().numpy())).to(codes.device)
