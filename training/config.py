"""A training run's config (YAML + --set overrides), its command line, and the SFTMD it builds."""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import yaml

from ikc.archs import SFTMD, EstimatorConfig, SFTMDConfig

from .dataset import DegradationRange

CL = torch.channels_last  # the memory layout training runs in (2.8x faster SFTMD steps on the CPU)


@dataclass
class TrainConfig:
    """One training run, read from a YAML file in training/configs."""

    scale: int = 4
    nf: int = 64
    nb: int = 16
    bicubic_skip: bool = True
    quality_input: bool = False  # SFTMD also reads the LR patch's JPEG compression level (SFTMDConfig)
    estimator_nf: int = 64
    corrector_sees_lr: bool = False  # the Corrector also reads the LR image (EstimatorConfig)
    batch_size: int = 16
    lr_patch: int = 32
    learning_rate: float = 2e-4
    min_learning_rate: float = 1e-6
    warmup_steps: int = 100
    total_steps: int = 20000
    correction_steps: int = 3
    predictor_steps: int = 1
    spread_weight: float = 0.0
    overestimate_weight: float = 1.0  # a too-wide width costs this many times a too-narrow one in the spread term
    perturbed_width_std: float = 0.0
    uniform_start_fraction: float = 0.0
    predictor_start_fraction: float = 0.5
    train_predictor: bool = True
    texture_pick: int = 1
    predictor_start_texture_pick: int | None = None  # the Predictor-start share drawn this way (None: texture_pick)
    replay_fraction: float = 0.0  # share of each P/C batch that carries on earlier batches' trajectories
    replay_rounds: int = 2  # a trajectory is carried on into at most this many later batches
    gaussian_codes: bool = False  # each Corrector update lands on the nearest isotropic Gaussian, as in the loop
    noise_weight: float = 0.0
    sigma_min: float = 0.2
    sigma_max: float = 4.0
    noise_max: float = 25.0
    clean_fraction: float = 0.5
    jpeg_fraction: float = 0.0  # share of LR patches saved as JPEG, at a quality drawn from [jpeg_min, jpeg_max]
    jpeg_min: int = 30
    jpeg_max: int = 95
    validation_jpeg: int | list[int] | None = None  # also validate on the held-out LR crops saved as JPEG at these
    validate_lossless: bool = True  # false: validate on the JPEG crops only (a network used only for JPEG inputs)
    validation_photos: str | None = None  # a folder (the development set, BSD58) validated on besides the held-out
    validation_limit: int = 10  # photos: its first this many by name (the 4 held-out photos are smooth ones)
    pca_seed: int = 0
    seed: int = 0
    holdout_images: int = 4
    validate_every: int = 200
    checkpoint_minutes: float = 5.0
    log_every: int = 20  # the loss is read back (a host-device sync on a GPU) only every this many steps
    amp: bool = False  # bf16 autocast for the forward passes (fp32 master weights); measured slower on this CPU
    ema_decay: float = 0.0  # > 0: keep an exponential moving average of the weights, validated and exportable
    compile: bool = False  # torch.compile the trained network (measured slower on this CPU)
    validation_sigmas: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0])

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "TrainConfig":
        """The file's values (over those of its `base:` file), then `overrides` (e.g. from --set); unknown keys
        are refused, naming them."""
        values = yaml_values(Path(path))
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        for name in (f.name for f in fields(cls) if isinstance(f.default, float) and f.name in values):
            values[name] = as_float(name, values[name])  # YAML reads 1e-4 (no dot) as a string
        return cls(**values)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """The config stored in a state file; keys of fields since removed are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def estimator(self) -> EstimatorConfig:
        """The Predictor's and Corrector's architecture."""
        return EstimatorConfig(nf=self.estimator_nf, corrector_sees_lr=self.corrector_sees_lr)

    def degradations(self) -> DegradationRange:
        return DegradationRange(self.sigma_min, self.sigma_max, self.noise_max, self.clean_fraction,
                                self.jpeg_fraction, self.jpeg_min, self.jpeg_max)

    def validation_qualities(self) -> list[int | None]:
        """The forms each held-out LR crop is validated in: None (lossless) and each JPEG quality asked for."""
        jpeg = self.validation_jpeg if isinstance(self.validation_jpeg, list) else [self.validation_jpeg]
        return [None] * self.validate_lossless + [q for q in jpeg if q is not None]

    def to_dict(self) -> dict:
        return asdict(self)


def as_float(name: str, value: object) -> float:
    """A float field's value, from a number or a numeric string; ValueError names the field otherwise."""
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"config value {name} must be a number, got {value!r}") from None


def yaml_values(path: Path) -> dict:
    """A config file's values; a variant names its `base:` file (beside it), whose values it overrides."""
    values = yaml.safe_load(path.read_text()) or {}
    base = values.pop("base", None)
    return {**(yaml_values(path.parent / base) if base else {}), **values}


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options every training script takes."""
    parser.add_argument("--config", required=True, help="YAML file with TrainConfig fields")
    parser.add_argument("--run-dir", required=True, type=Path, help="run folder: state, log.txt, metrics.csv")
    parser.add_argument("--data", type=Path, default=Path("data/train"), help="folder of HR training photos")
    parser.add_argument("--minutes", type=float, help="stop (and save) after this many minutes")
    parser.add_argument("--steps", type=int, help="stop at this global step (default: total_steps)")
    parser.add_argument("--threads", type=int, help="torch threads per process")
    parser.add_argument("--device", default="cpu", help="torch device to train on: cpu (default) or cuda")
    parser.add_argument("--anneal", action="store_true",
                        help="with --minutes: one cosine from learning_rate down to min_learning_rate over those "
                             "minutes, wherever the run resumes (for a lent GPU, whose step rate is not known ahead)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=config_override,
                        help="override one config value (YAML syntax), e.g. --set batch_size=64 --set amp=true")
    parser.add_argument("--from-checkpoint", type=Path,
                        help="with no state in --run-dir yet: start from this shipped checkpoint (its weights, PCA, "
                             "step and hours; for another scale, the weights whose shapes fit, from step 0)")


def config_override(text: str) -> tuple[str, object]:
    """"batch_size=64" -> ("batch_size", 64): the value read as YAML, like the config files."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def load_config(args: argparse.Namespace) -> TrainConfig:
    """The run's config: --config, then each --set."""
    return TrainConfig.from_yaml(args.config, **dict(args.set))



def build_sftmd(config: TrainConfig) -> SFTMD:
    """The SFTMD a run trains (or trains against), channels_last."""
    return SFTMD(SFTMDConfig(scale=config.scale, nf=config.nf, nb=config.nb,
                             bicubic_skip=config.bicubic_skip, quality_input=config.quality_input)).to(memory_format=CL)
