"""One run configuration for search, training and evaluation, with named profiles.

The same :class:`RunConfig` is built by the command line (``--profile``, ``--set key=value``,
``--config file.yaml``), by the Python API (``RunConfig.from_profile('quick', 'denoise',
epochs=5)``) and by the notebooks (their papermill parameters carry the same names).

Profiles scale the reference schedule (REFERENCE.md sections 5.2 and 6):

* ``smoke``: seconds; a tiny grid (f=4, L=2, B=2) on 32x32 crops, arch steps and validation
  both exercised. For tests.
* ``quick``: a few minutes on 2 CPU cores; small grid (f=4, L=3, B=3) on 32x32 crops.
* ``gpu``: the paper's grid and crops, shortened to fit about 8 minutes on one H100.
* ``paper``: the released code's full schedule (100 search epochs, arch steps from epoch 21,
  validation from epoch 61; training 600k iterations; the paper says 400k for denoising).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from dataclasses import dataclass, field

import yaml

from hinas.space.spec import SupernetConfig
from hinas.errors import ConfigError, HinasError
from hinas.eval.evaluation import VALIDATION_PROTOCOLS
from hinas.safeio import finite_number, load_yaml_file, quote

PROFILES = ("smoke", "quick", "gpu", "paper")
DEVICE_PATTERN = re.compile(r"cpu|cuda(:[0-9]{1,2})?")  # the devices a run can use (present or not: checked at run time)
# the fast CUDA path's levers (hinas.engine.fast): how a step runs, not what it computes (float
# rounding apart), so a run may be continued with other values; ignored on the CPU
FAST_PATH_KEYS = ("cuda_graphs", "fused_optimizer", "cudnn_benchmark", "native_batchnorm", "channels_last")
FAST_PATH = {k: True for k in FAST_PATH_KEYS}


@dataclass
class RunConfig:
    # -- what ------------------------------------------------------------------------------
    task: str = "denoise"
    scale: typing.Optional[int] = None
    # denoising noise levels (0-255 scale): the search draws one per sample from search_sigma
    # (one search for all levels, as the reference); training and validation use sigma.
    search_sigma: typing.List[float] = field(default_factory=lambda: [30.0, 50.0, 70.0])
    sigma: typing.List[float] = field(default_factory=lambda: [50.0])
    profile: str = "paper"
    seed: int = 0
    device: str = "cpu"
    data_root: typing.Optional[str] = None
    max_images: typing.Optional[int] = None  # first N training images (sorted); None = all
    # -- search space (SupernetConfig) -----------------------------------------------------
    f: int = 10
    layers: int = 3
    steps: int = 4
    levels: int = 3
    width_factors: typing.List[float] = field(default_factory=lambda: [1.0, 1.5, 2.0])
    lwas: bool = True
    cell_sharing: str = "eq5"
    residual: bool = True
    search_sigmoid: bool = True
    bn_init: str = "torch1"  # affine BN scales: 'torch1' = U(0,1) as the release's torch 1.0.0; 'ones'
    memory_saving: str = "none"  # 'recompute': same search, less memory (not in the paper)
    partial_channels: int = 1  # K > 1: PC-DARTS partial channels (changes the search)
    # -- search schedule (REFERENCE 6) -----------------------------------------------------
    epochs: int = 100
    batch_size: int = 6
    patch: int = 64
    crops_per_image: int = 1  # random crops per W image per epoch (the reference: 1)
    arch_start_epoch: int = 20  # arch steps for epochs > this (1-based)
    val_start_epoch: int = 60  # validate for epochs > this
    split_mode: str = "reference"
    val_fraction: float = 0.02
    val_crop: typing.Optional[int] = None  # validate on central crops of this size (None: whole)
    # validation that picks the search's genotype and training's best weights: 'reference' = the
    # released code's (stride-64 patches, one sigma per patch, float output; hinas.eval.evaluation),
    # 'standard' = whole images, one pass per sigma, the standard metrics
    val_protocol: str = "reference"
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    lr_schedule: str = "poly_cosine"  # reference; 'cosine' = the paper's monotone 0.025 -> 0.001
    cosine_t_max: int = 10
    a_lr: float = 1e-3
    a_weight_decay: float = 1e-3
    search_ssim_weight: typing.Optional[float] = None  # None: task default (0.5 dn, 0.6 SR)
    # -- training of the derived network (REFERENCE 5.2) -----------------------------------
    model: str = "hinas"  # or 'dncnn' (baseline trained with the same budget)
    net_f: typing.Optional[int] = None  # None: 20 dn / 16 SR
    node_channels: typing.Optional[typing.List[int]] = None  # fixed widths (HiNAS-w40 / -wm)
    iterations: int = 600_000
    train_batch_size: typing.Optional[int] = None  # None: 24 dn / 16 SR
    train_lr: float = 0.05
    train_weight_decay: float = 4e-5
    bias_lr_factor: float = 2.0
    grad_clip: float = 5.0
    train_ssim_weight: typing.Optional[float] = None  # None: 0.6; 0 = MSE only (Table 4)
    # at a batch mean SSIM <= 0: 'gradient' = follow -1/(x ln 10) as the released code (its loss
    # value is NaN there; we log a finite one and count the event), 'clamp' = floor at 1e-4
    nonpositive_ssim: str = "gradient"
    # denoising search and training patches: RandomRescaleCrop (p=0.5, x U(0.8, 1.2)), as the code
    rescale_aug: bool = True
    val_every: int = 1000
    val_after_fraction: float = 0.75  # validate only after this fraction of iterations
    # -- mechanics -------------------------------------------------------------------------
    checkpoint_every: int = 50  # steps between atomic checkpoints (and at every epoch end)
    log_every: int = 10
    threads: typing.Optional[int] = None  # CPU threads for torch (None: torch's default)
    amp_bf16: bool = False  # CUDA, or the CPU where it has bf16 kernels (a switch: it changes numerics)
    channels_last: bool = False  # NHWC activations, CUDA and CPU (hinas.engine.fast.CPU_LEVERS)
    device_data: bool = False  # training crops, flips and noise made on the device (hinas.data.device_sampling)
    compile: bool = False  # training: torch.compile the network, eager fallback (hinas.engine.compile)
    # the fast CUDA path (hinas.engine.fast), each lever a switch; on in the gpu/paper profiles
    cuda_graphs: bool = False
    fused_optimizer: bool = False
    cudnn_benchmark: bool = False
    native_batchnorm: bool = False
    quiet: bool = False

    def __post_init__(self):
        self.validate()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_profile(cls, profile: str = "quick", task: str = "denoise", scale: int | None = None,
                     **overrides) -> "RunConfig":
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        values = {"task": task, "scale": scale, "profile": profile, **_task_defaults(task, scale),
                  **_PROFILE_VALUES[profile](task)}
        if scale is not None:
            values["scale"] = scale
        values.update(overrides)
        return cls.from_dict(values).check_starts(overrides)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(known)}")
        typed = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
        return cls(**typed)

    @classmethod
    def from_yaml(cls, path) -> "RunConfig":
        try:
            data = load_yaml_file(path, "config")
        except HinasError as exc:
            raise ConfigError(str(exc)) from None
        path = quote(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings (key: value lines)")
        bad = [k for k in data if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"{path}: setting names must be text, got {str(bad[0])[:40]!r}")
        profile, task, scale = (data.pop(k, d) for k, d in (("profile", "paper"), ("task", "denoise"), ("scale", None)))
        try:
            return cls.from_profile(profile, task, scale, **data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def with_overrides(self, assignments) -> "RunConfig":
        """Apply ``["key=value", ...]`` (from ``--set``), parsing values as YAML scalars."""
        values, given = self.to_dict(), []
        for item in assignments or ():
            if "=" not in item:
                raise ConfigError(f"--set expects key=value, got {item!r}")
            key, raw = item.split("=", 1)
            key = key.strip()
            given.append(key)
            if key not in values:
                raise ConfigError(f"unknown setting {key!r} in --set; known: {', '.join(values)}")
            try:
                values[key] = yaml.safe_load(raw)
            except yaml.YAMLError:
                values[key] = raw
        return RunConfig.from_dict(values).check_starts(given)

    def replace(self, **changes) -> "RunConfig":
        return RunConfig.from_dict({**self.to_dict(), **changes}).check_starts(changes)

    def check_starts(self, given) -> "RunConfig":
        """Refuse a start (arch or validation steps run for epochs > it) never reached, if it or epochs is ``given``."""
        for start, never in (("arch_start_epoch", "train the architecture"), ("val_start_epoch", "validate")):
            if (start in given or "epochs" in given) and (v := getattr(self, start)) >= self.epochs:
                whose = "" if start in given else " (the profile's)"
                raise ConfigError(f"{start}={v}{whose} with epochs={self.epochs}: the search would never {never} (it does "
                                  f"after epoch {v}, the last is {self.epochs}); set {start} below that, or raise epochs")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def key(self, *extra) -> str:
        """A short hash of everything that changes the result (not device or verbosity)."""
        d = self.to_dict()
        for k in ("device", "quiet", "checkpoint_every", "log_every", "threads"):
            d.pop(k)
        for k in ("device_data", "compile", *FAST_PATH_KEYS[:-1]):  # channels_last was always keyed
            if not d[k]:  # keeps the keys of runs made before the switch existed
                d.pop(k)
        blob = json.dumps([d, *extra], sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    # -- derived ------------------------------------------------------------------------------
    def supernet_config(self) -> SupernetConfig:
        return SupernetConfig.paper(
            self.task, self.scale, f=self.f, layers=self.layers, steps=self.steps, levels=self.levels,
            width_factors=tuple(self.width_factors), lwas=self.lwas, cell_sharing=self.cell_sharing,
            residual=self.residual, search_sigmoid=self.search_sigmoid, bn_init=self.bn_init,
            memory_saving=self.memory_saving,
            partial_channels=self.partial_channels,
        )

    @property
    def effective_train_batch(self) -> int:
        return self.train_batch_size or (24 if self.task == "denoise" else 16)

    def validate(self) -> None:
        if self.task not in ("denoise", "sr"):
            raise ConfigError(f"task must be 'denoise' or 'sr', got {self.task!r}")
        if self.task == "sr" and self.scale not in (2, 3, 4):
            raise ConfigError(f"task sr needs scale 2, 3 or 4 (--scale), got {self.scale!r}")
        if self.task == "denoise":
            self.scale = None
            for name in ("sigma", "search_sigma"):
                levels = getattr(self, name)
                if not levels or any(s < 0 for s in levels):
                    raise ConfigError(f"{name} must be a non-empty list of non-negative noise levels, got {levels}")
                if not any(levels):  # a denoiser for noise level 0 learns the identity: a meaningless run
                    raise ConfigError(f"{name}={levels} with task denoise: no noise to remove; give a level above 0")
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"setting 'device' must be cpu, cuda or cuda:N, got {self.device!r}")
        for name in ("epochs", "batch_size", "patch", "iterations", "crops_per_image", "checkpoint_every",
                     "log_every", "val_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        self._check_ranges()
        if self.lr_schedule not in ("poly_cosine", "cosine"):
            raise ConfigError(f"lr_schedule must be 'poly_cosine' (reference) or 'cosine' (paper), got {self.lr_schedule!r}")
        if self.split_mode not in ("reference", "random"):
            raise ConfigError(f"split_mode must be 'reference' or 'random', got {self.split_mode!r}")
        if self.val_protocol not in VALIDATION_PROTOCOLS:
            raise ConfigError(f"val_protocol must be one of {', '.join(VALIDATION_PROTOCOLS)}, got {self.val_protocol!r}")
        if self.nonpositive_ssim not in ("gradient", "clamp"):
            raise ConfigError(f"nonpositive_ssim must be 'gradient' (code) or 'clamp', got {self.nonpositive_ssim!r}")
        if self.model not in ("hinas", "dncnn"):
            raise ConfigError(f"model must be 'hinas' or 'dncnn', got {self.model!r}")
        if self.model == "dncnn" and self.task != "denoise":
            raise ConfigError("model 'dncnn' is a denoising baseline; use task denoise")
        self.supernet_config()  # validates the space settings

    def _check_ranges(self) -> None:
        """Every number finite and within what a run can use; refused by name otherwise."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, float):
                    finite_number(x, f"setting {f.name!r}", error=ConfigError)
                if isinstance(x, str) and not x.strip():  # '' is never "the default" (data_root: here?)
                    raise ConfigError(f"setting {f.name!r} is empty; give a value, or null for the default")
        for name, (lo, hi) in _INT_RANGES.items():
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and lo <= v <= hi):
                raise ConfigError(f"setting {name!r} must be an integer in {lo}..{hi}, got {v!r}")
        for name, (lo, hi, lo_open, hi_open) in _FLOAT_RANGES.items():
            if getattr(self, name) is not None:
                finite_number(getattr(self, name), f"setting {name!r}", lo=lo, hi=hi, lo_open=lo_open,
                              hi_open=hi_open, error=ConfigError)
        for name in ("sigma", "search_sigma"):
            if any(not 0 <= s <= 255 for s in getattr(self, name)):
                raise ConfigError(f"setting {name!r}: noise levels are on the 0-255 scale, got {getattr(self, name)}")
        if any(not 0 < w <= 16 for w in self.width_factors):
            raise ConfigError(f"setting 'width_factors' must be numbers in (0, 16], got {self.width_factors}")
        if self.node_channels is not None and any(not 1 <= c <= 2048 for c in self.node_channels):
            raise ConfigError(f"setting 'node_channels' must be integers in 1..2048, got {self.node_channels}")
        # the supernet's size, estimated before any tensor is allocated (the paper's: ~1 M)
        edges = self.steps * (self.steps + 3) // 2
        params = self.layers * sum(edges * 30 * (self.f * w) ** 2 for w in self.width_factors[: self.levels])
        if params > MAX_SUPERNET_PARAMS:
            raise ConfigError(f"settings f={self.f}, layers={self.layers}, steps={self.steps}, width_factors="
                              f"{self.width_factors} make a supernet of about {params / 1e6:.0f} M parameters "
                              f"(limit {MAX_SUPERNET_PARAMS / 1e6:.0f} M); choose smaller values")


MAX_SUPERNET_PARAMS = 300_000_000
# (lo, hi) for integers; None values (where allowed) are not checked
_INT_RANGES = {
    "seed": (0, 2**40), "max_images": (1, 10**7), "f": (1, 256), "layers": (1, 64), "steps": (1, 16),
    "levels": (1, 8), "partial_channels": (1, 256), "epochs": (1, 10**6), "batch_size": (1, 4096), "patch": (8, 4096),
    "crops_per_image": (1, 10**4), "arch_start_epoch": (0, 10**6), "val_start_epoch": (0, 10**6),
    "val_crop": (11, 10**5), "cosine_t_max": (1, 10**6), "net_f": (1, 256), "iterations": (1, 10**9),
    "train_batch_size": (1, 4096), "val_every": (1, 10**9), "checkpoint_every": (1, 10**9),
    "log_every": (1, 10**9), "threads": (1, 4096),
}
# (lo, hi, lo_open, hi_open); non-finite values are refused before these
_INF = float("inf")
_FLOAT_RANGES = {
    "val_fraction": (0.0, 1.0, True, True), "w_lr": (0.0, _INF, True, False), "w_lr_min": (0.0, _INF, False, False),
    "w_momentum": (0.0, 1.0, False, True), "w_weight_decay": (0.0, _INF, False, False),
    "a_lr": (0.0, _INF, True, False), "a_weight_decay": (0.0, _INF, False, False),
    "search_ssim_weight": (0.0, _INF, False, False), "train_lr": (0.0, _INF, True, False),
    "train_weight_decay": (0.0, _INF, False, False), "bias_lr_factor": (0.0, _INF, False, False),
    "grad_clip": (0.0, _INF, True, False), "train_ssim_weight": (0.0, _INF, False, False),
    "val_after_fraction": (0.0, 1.0, False, True),
}


# One line per RunConfig setting, shown by ``hinas config show``. A new field needs an entry
# here, or ``field(..., metadata={"help": ...})`` on the field itself (tests/test_config_cli.py
# checks that every field has one).
FIELD_HELP = {
    "task": "what to restore: 'denoise' (grey, x - net(x)) or 'sr' (RGB, bicubic(x) + net(x))",
    "scale": "SR upscaling factor 2, 3 or 4 (None for denoising)",
    "search_sigma": "denoising noise levels (0-255) the search draws one of per sample",
    "sigma": "denoising noise level(s) (0-255) for training and validation",
    "profile": "named preset the values came from: smoke, quick, gpu or paper",
    "seed": "seed of weights, crops, noise and the data split",
    "device": "torch device: 'cpu' or 'cuda' (the gpu and paper profiles use cuda)",
    "data_root": "folder with the benchmark datasets (None: $HINAS_DATA, else the embedded images)",
    "max_images": "use only the first N training images, sorted by name (None: all)",
    "f": "supernet channels per cell node at width level 0 (paper: 10 dn, 8 SR)",
    "layers": "L, number of cell layers of the supernet (paper: 3 dn, 2 SR)",
    "steps": "B, intermediate nodes per cell (paper: 4 dn, 3 SR)",
    "levels": "S, number of width levels in the outer search space (3)",
    "width_factors": "channel multiplier per width level: [1, 1.5, 2] (code) or [1, 2, 4] (paper)",
    "lwas": "layer-wise architecture sharing: one alpha per layer (True) or one for all layers",
    "cell_sharing": "'eq5': one shared cell per target (HiNAS); 'eq6': a cell per incoming path (Auto-DeepLab)",
    "residual": "residual learning: the network predicts the noise (dn) or the detail over bicubic (SR)",
    "search_sigmoid": "sigmoid after the residual addition in the search network, as the released code",
    "bn_init": "initial affine BatchNorm scale: 'torch1' = U(0, 1) as the release's torch 1.0.0, 'ones' = today's torch",
    "memory_saving": "'none' (as the code) or 'recompute': checkpoint every mixed op; same gradients, less memory",
    "partial_channels": "K > 1: PC-DARTS partial channels, 1/K of each edge's channels through the ops (changes the search)",
    "epochs": "search epochs (paper: 100)",
    "batch_size": "search batch size (paper: 6 dn, 24 SR)",
    "patch": "side of the training crops in pixels (LR pixels for SR)",
    "crops_per_image": "random crops per training image per epoch (the reference: 1)",
    "arch_start_epoch": "architecture (alpha, beta) steps start after this epoch (paper: 20)",
    "val_start_epoch": "search validation starts after this epoch (paper: 60)",
    "split_mode": "how search images split into W/A/V: 'reference' (sorted by name) or 'random' (seeded)",
    "val_fraction": "fraction of the search images held out for validation",
    "val_crop": "validate on central crops of this size (None: whole images)",
    "val_protocol": "validation that picks the genotype / best weights: 'reference' (the code's patch-wise one, "
                    "one sigma per patch) or 'standard' (whole images, one pass per sigma)",
    "w_lr": "search: initial SGD learning rate of the network weights",
    "w_lr_min": "search: final (minimum) weight learning rate",
    "w_momentum": "search: SGD momentum of the network weights",
    "w_weight_decay": "search: weight decay of the network weights",
    "lr_schedule": "search weight-lr schedule: 'poly_cosine' (released code) or 'cosine' (paper)",
    "cosine_t_max": "period in epochs of the cosine part of 'poly_cosine'",
    "a_lr": "search: Adam learning rate of the architecture parameters",
    "a_weight_decay": "search: weight decay of the architecture parameters",
    "search_ssim_weight": "search loss weight of log10(1/SSIM) (None: 0.5 dn, 0.6 SR)",
    "model": "network to train: 'hinas' (from a genotype) or 'dncnn' (denoising baseline)",
    "net_f": "derived network channels per node at level 0 (None: 20 dn, 16 SR)",
    "node_channels": "fixed channels per layer instead of the searched widths (HiNAS-w40 / -wm)",
    "iterations": "training iterations of the derived network (code: 600k; paper: 400k for denoising)",
    "train_batch_size": "training batch size (None: 24 dn, 16 SR)",
    "train_lr": "training: initial SGD learning rate (poly decay to 0)",
    "train_weight_decay": "training: weight decay",
    "bias_lr_factor": "training: learning-rate multiplier of biases (which get no weight decay)",
    "grad_clip": "training: gradient-norm clip",
    "train_ssim_weight": "training loss weight of log10(1/SSIM) (None: 0.6; 0 = MSE/L1 only)",
    "nonpositive_ssim": "at a batch mean SSIM <= 0: 'gradient' = follow -1/(x ln 10) as the code (finite value "
                        "logged, event counted) or 'clamp' = floor SSIM at 1e-4 (zero gradient)",
    "rescale_aug": "denoising patches: the code's RandomRescaleCrop (p=0.5, scale U(0.8, 1.2), PIL bicubic)",
    "val_every": "training: validate every N iterations (once validation has started)",
    "val_after_fraction": "training: validate only after this fraction of the iterations",
    "checkpoint_every": "steps between atomic checkpoints (and at every epoch end)",
    "log_every": "steps between progress/history records",
    "threads": "CPU threads for torch (None: torch's default)",
    "amp_bf16": "bfloat16 autocast, CUDA or CPU (changes numerics: off unless a paired measurement allows it)",
    "channels_last": "channels-last (NHWC) memory format, CUDA and CPU",
    "device_data": "training crops, flips and noise made on the device, no per-step host work (hinas.data.device_sampling)",
    "compile": "training: torch.compile the network in place, eager fallback on a compile error (hinas.engine.compile)",
    "cuda_graphs": "CUDA: each training/search step captured once as a CUDA graph and replayed (needs fused_optimizer)",
    "fused_optimizer": "CUDA: fused SGD (learning rate as a device tensor) and capturable Adam",
    "cudnn_benchmark": "CUDA: cuDNN autotunes its convolution algorithms per shape",
    "native_batchnorm": "CUDA: BatchNorm through PyTorch's kernels instead of cuDNN's (fast with channels_last)",
    "quiet": "no progress bar",
}


def describe_settings(cfg: RunConfig) -> list[dict]:
    """``[{"key", "value", "help"}, ...]`` for every RunConfig field, in declaration order."""
    return [{"key": f.name, "value": getattr(cfg, f.name), "help": f.metadata.get("help") or FIELD_HELP.get(f.name, "")}
            for f in dataclasses.fields(cfg)]

def _task_defaults(task: str, scale) -> dict:
    if task == "sr":
        return dict(sigma=[0.0], search_sigma=[0.0], f=8, layers=2, steps=3, batch_size=24, val_fraction=0.05, scale=scale or 4)
    return {}


# Training learning rate: 0.05 in every profile, as the released code (it once exploded here: that
# was BatchNorm's initial scale, U(0, 1) in the torch 1.0.0 the code pins; ``bn_init='torch1'``).
# CPU threads: one, in every CPU profile: under OMP_WAIT_POLICY=PASSIVE more threads lose on these
# small tensors as soon as anything else runs (2 cores beside one busy process, a quick training
# step: 0.20 s with 1 thread, 0.42 s with 2; a quick supernet step 0.98 / 2.84 s).
# quick trains with the SSIM floor ('clamp'), the other profiles as the release ('gradient'): at a
# batch mean SSIM <= 0 the released gradient of log10(1/SSIM) points to *lower* SSIM, a trap the
# quick scale's 8 patches of 32x32 reach (2 of 3 seeds of the CLI quick training had such batches;
# two ablation runs at 0.05 ended at 3 dB) and the paper's 24 of 64x64 rarely do; a run that never
# reaches it is the same either way. 1200 iterations: at 600, 3 seeds ended at 23.45-23.98 dB on
# the embedded photos, at 1200 at 24.23-24.47 (README "Profiles" has the measurements).


def _smoke(task):
    return dict(f=4, layers=2, steps=2, epochs=4, batch_size=2, patch=32 if task == "denoise" else 16,
                crops_per_image=2, arch_start_epoch=0, val_start_epoch=0, val_crop=48, val_protocol="standard", max_images=8,
                net_f=4, iterations=12, train_batch_size=2, val_every=4, val_after_fraction=0.5,
                checkpoint_every=2, log_every=2, threads=1)


def _quick(task):
    return dict(f=4, layers=3, steps=3, epochs=12, batch_size=4, patch=32 if task == "denoise" else 24,
                crops_per_image=4, arch_start_epoch=4, val_start_epoch=6, val_crop=96, val_protocol="standard", max_images=None,
                net_f=8, iterations=1200, train_batch_size=8, val_every=50, val_after_fraction=0.5, nonpositive_ssim="clamp",
                # arch lr x30: the quick search takes ~100x fewer architecture steps than the paper's;
                # with 1e-3 alpha ends within 0.0005 of uniform (measured), with 0.03 it moves ~0.06
                a_lr=0.03, checkpoint_every=25, log_every=10, threads=1)


def _gpu(task):
    return dict(epochs=40, arch_start_epoch=8, val_start_epoch=24, val_crop=None, iterations=20_000,
                val_protocol="reference", val_every=1000, checkpoint_every=200, log_every=50, device="cuda",
                **FAST_PATH)


def _paper(task):
    return dict(device="cuda", val_protocol="reference", **FAST_PATH)


_PROFILE_VALUES = {"smoke": _smoke, "quick": _quick, "gpu": _gpu, "paper": _paper}


def _coerce(name: str, value, annotation):
    """Check and convert one setting; reject ill-typed values by name."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union and type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        annotation = [a for a in args if a is not type(None)][0]
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, typing.List):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"setting {name!r} must be a list, got {value!r}")
        return [_coerce(name, v, args[0]) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"setting {name!r} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"setting {name!r} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:  # finite first (the one check, in hinas.safeio), then whole
            f = finite_number(value, name)
            if f != int(f):
                raise ValueError(value)
        except (HinasError, ValueError):
            raise ConfigError(f"setting {name!r} must be an integer, got {value!r}") from None
        return int(f)
    if annotation is float:
        return finite_number(value, f"setting {name!r}", bools=False, error=ConfigError)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"setting {name!r} must be a string, got {value!r}")
        return value
    return value
