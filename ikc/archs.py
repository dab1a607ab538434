"""Networks of IKC: SFTMD (super-resolver conditioned on the kernel code), Predictor and Corrector.

Layer specs follow the official code (see the reference sheet), with three deliberate changes:
SFTMD may add a bicubic upsampling of its input (it then learns only the residual, which trains
far faster on a CPU budget); the Predictor and Corrector see a parameter-free detail map of their
image (see detail_map), and end without an activation, since our codes are centred and signed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .kernel_code import CODE_LENGTH

SCALES = (2, 3, 4)


@dataclass(frozen=True)
class SFTMDConfig:
    """Size of an SFTMD; the defaults are the official x4 network."""

    scale: int = 4
    nf: int = 64
    nb: int = 16
    code_length: int = CODE_LENGTH
    bicubic_skip: bool = True
    quality_input: bool = False  # also conditioned on how hard its LR input was JPEG-compressed (see compression_level)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EstimatorConfig:
    """Width of the Predictor and Corrector; whether the Corrector also updates the noise entry."""

    nf: int = 64
    code_length: int = CODE_LENGTH
    correct_noise: bool = False  # as in the official IKC, the Corrector corrects the kernel only
    corrector_sees_lr: bool = False  # the Corrector also sees the LR image it corrects for (see Corrector)

    def to_dict(self) -> dict:
        return asdict(self)


class SFTLayer(nn.Module):
    """Spatial feature transform: features * sigmoid(gamma(f, h)) + beta(f, h)."""

    def __init__(self, nf: int, code_length: int, hidden: int = 32):
        super().__init__()
        self.gamma = nn.Sequential(nn.Conv2d(nf + code_length, hidden, 3, 1, 1), nn.LeakyReLU(0.2),
                                   nn.Conv2d(hidden, nf, 3, 1, 1))
        self.beta = nn.Sequential(nn.Conv2d(nf + code_length, hidden, 3, 1, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(hidden, nf, 3, 1, 1))

    def forward(self, features: torch.Tensor, code_map: torch.Tensor) -> torch.Tensor:
        joined = torch.cat((features, code_map), dim=1)
        return features * torch.sigmoid(self.gamma(joined)) + self.beta(joined)


class SFTResidualBlock(nn.Module):
    """x + conv(ReLU(SFT(conv(ReLU(SFT(x))))))."""

    def __init__(self, nf: int, code_length: int):
        super().__init__()
        self.sft1 = SFTLayer(nf, code_length)
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.sft2 = SFTLayer(nf, code_length)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, features: torch.Tensor, code_map: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.sft1(features, code_map)))
        out = self.conv2(F.relu(self.sft2(out, code_map)))
        return features + out


def _upsampler(nf: int, scale: int) -> nn.Sequential:
    """x4: two conv + PixelShuffle(2) stages; x2 and x3: one conv + PixelShuffle(scale)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    factors = [2, 2] if scale == 4 else [scale]
    layers: list[nn.Module] = []
    for factor in factors:
        layers += [nn.Conv2d(nf, nf * factor ** 2, 3, 1, 1), nn.PixelShuffle(factor), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


def compression_level(quality: int | None) -> float:
    """The JPEG condition an SFTMD with quality_input reads: (100 - quality) / 100, 0 for a lossless image."""
    return 0.0 if quality is None else (100 - quality) / 100


class SFTMD(nn.Module):
    """Super-resolves an LR batch (B, 3, h, w) in [0, 1] given kernel codes (B, code_length).

    With quality_input, each SFT layer also reads the input's compression level (B,) (compression_level; none
    given: lossless), appended to the code.
    """

    def __init__(self, config: SFTMDConfig = SFTMDConfig()):
        super().__init__()
        self.config = config
        nf, length = config.nf, config.code_length + config.quality_input
        self.head = nn.Sequential(nn.Conv2d(3, nf, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(nf, nf, 3, 1, 1),
                                  nn.LeakyReLU(0.2), nn.Conv2d(nf, nf, 3, 1, 1))
        self.body = nn.ModuleList(SFTResidualBlock(nf, length) for _ in range(config.nb))
        self.sft_tail = SFTLayer(nf, length)
        self.conv_tail = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upsampler = _upsampler(nf, config.scale)
        self.conv_out = nn.Conv2d(nf, 3, 9, 1, 4)

    def forward(self, lr: torch.Tensor, code: torch.Tensor, compression: torch.Tensor | None = None) -> torch.Tensor:
        batch, _, height, width = lr.shape
        if self.config.quality_input:
            level = torch.zeros(batch) if compression is None else compression
            code = torch.cat((code, level.reshape(batch, 1).to(code)), dim=1)
        code_map = code.reshape(batch, -1, 1, 1).expand(-1, -1, height, width).to(lr)
        if lr.is_contiguous(memory_format=torch.channels_last):
            code_map = code_map.contiguous(memory_format=torch.channels_last)
        head = self.head(lr)
        features = head
        for block in self.body:
            features = block(features, code_map)
        features = self.conv_tail(self.sft_tail(features + head, code_map))
        out = self.conv_out(self.upsampler(features))
        if self.config.bicubic_skip:
            out = out + F.interpolate(lr, scale_factor=self.config.scale, mode="bicubic", align_corners=False)
        return out.clamp(0, 1)


def high_pass(images: torch.Tensor) -> torch.Tensor:
    """The image minus its 3x3 local mean."""
    return images - F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="reflect"), 3, 1)


def detail_map(images: torch.Tensor) -> torch.Tensor:
    """High-pass detail, scaled to unit std per image.

    Blur shows in the shape of fine detail, not in brightness or contrast; removing those nuisances
    makes kernel estimation learnable in hundreds of steps instead of (measured) not at all.
    """
    detail = high_pass(images)
    return detail / (detail.std(dim=(1, 2, 3), keepdim=True) + 1e-3)


def sharpening_maps(sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """The LR image's detail map at SR size (bicubic) and, as one constant channel, the log ratio of the SR's
    detail std to the upsampled LR's: how much SFTMD sharpened, which detail_map's own scaling hides."""
    upsampled = F.interpolate(lr, size=sr.shape[-2:], mode="bicubic", align_corners=False)
    lr_detail, sr_detail = high_pass(upsampled), high_pass(sr)
    lr_std = lr_detail.std(dim=(1, 2, 3), keepdim=True) + 1e-3
    ratio = torch.log((sr_detail.std(dim=(1, 2, 3), keepdim=True) + 1e-3) / lr_std)
    return torch.cat((lr_detail / lr_std, ratio.expand(-1, 1, *sr.shape[-2:])), dim=1)


class Predictor(nn.Module):
    """Guesses the kernel code h0 from an LR batch: six 5x5 convs and global average pooling."""

    def __init__(self, config: EstimatorConfig = EstimatorConfig()):
        super().__init__()
        self.config = config
        nf = config.nf
        channels = [3, nf, nf, nf, nf, nf]
        strides = [1, 1, 1, 2, 1]
        layers: list[nn.Module] = []
        for c_in, c_out, stride in zip(channels[:-1], channels[1:], strides):
            layers += [nn.Conv2d(c_in, c_out, 5, stride, 2), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(nf, config.code_length, 5, 1, 2))
        self.convs = nn.Sequential(*layers)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.convs(detail_map(lr)).mean(dim=(2, 3))


class Corrector(nn.Module):
    """Proposes a code update dh from the current SR batch and its code (with corrector_sees_lr, also from the
    LR batch, as sharpening_maps: DAN's estimator sees both images)."""

    def __init__(self, config: EstimatorConfig = EstimatorConfig()):
        super().__init__()
        self.config = config
        nf, length = config.nf, config.code_length
        inputs = 7 if config.corrector_sees_lr else 3
        layers: list[nn.Module] = []
        for index, stride in enumerate([1, 2, 1, 2, 1, 1, 1]):
            layers += [nn.Conv2d(inputs if index == 0 else nf, nf, 5, stride, 2), nn.LeakyReLU(0.1)]
        self.convs = nn.Sequential(*layers)
        self.code_dense = nn.Sequential(nn.Linear(length, nf), nn.LeakyReLU(0.1),
                                        nn.Linear(nf, nf), nn.LeakyReLU(0.1))
        self.fuse = nn.Sequential(nn.Conv2d(2 * nf, 2 * nf, 1), nn.LeakyReLU(0.1),
                                  nn.Conv2d(2 * nf, nf, 1), nn.LeakyReLU(0.1),
                                  nn.Conv2d(nf, length, 1))

    def forward(self, sr: torch.Tensor, code: torch.Tensor, lr: torch.Tensor | None = None) -> torch.Tensor:
        image = detail_map(sr)
        if self.config.corrector_sees_lr:
            if lr is None:
                raise ValueError("this Corrector also reads the LR image: pass lr")
            image = torch.cat((image, sharpening_maps(sr, lr.to(sr))), dim=1)
        features = self.convs(image)
        code_features = self.code_dense(code.to(sr)).reshape(sr.shape[0], -1, 1, 1)
        joined = torch.cat((features, code_features.expand_as(features)), dim=1)
        delta = self.fuse(joined).mean(dim=(2, 3))
        if self.config.correct_noise:
            return delta
        keep_noise = torch.ones(delta.shape[1], dtype=delta.dtype, device=delta.device)
        keep_noise[-1] = 0  # the noise level stays the Predictor's estimate
        return delta * keep_noise
