"""IKC Studio model core: degradation, kernel code, SFTMD / Predictor / Corrector, the correction loop."""
from .archs import SCALES, SFTMD, Corrector, EstimatorConfig, Predictor, SFTMDConfig
from .checkpoint import CheckpointError
from .degradation import (
    GAUSSIAN8,
    JPEG_QUALITIES,
    anisotropic_gaussian_kernel,
    blur,
    centre_crop,
    check_jpeg_quality,
    degrade,
    degrade_image,
    gaussian_kernel,
    imresize,
    jpeg_compress,
    modcrop,
    quantize,
    upscale_bicubic,
)
from .imageio import ImageData, ImageError, load_image, read_image, save_png
from .kernel_code import CODE_LENGTH, KernelPCA, decode_kernel, encode, estimate_width, fit_pca
from .metrics import psnr_ssim_y, psnr_y, ssim_y
from .pipeline import IKC, Step, available_scales, load, use_available_cpus

__all__ = [
    "SCALES", "SFTMD", "Corrector", "EstimatorConfig", "Predictor", "SFTMDConfig", "CheckpointError", "GAUSSIAN8",
    "JPEG_QUALITIES", "anisotropic_gaussian_kernel", "blur", "centre_crop", "check_jpeg_quality", "degrade",
    "degrade_image", "upscale_bicubic", "gaussian_kernel", "imresize", "jpeg_compress", "modcrop", "quantize",
    "ImageData", "ImageError", "load_image", "read_image", "save_png", "CODE_LENGTH", "KernelPCA",
    "decode_kernel", "encode", "estimate_width", "fit_pca", "psnr_ssim_y", "psnr_y", "ssim_y", "IKC", "Step",
    "available_scales", "load", "use_available_cpus",
]
