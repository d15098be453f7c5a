"""One run configuration for search, training and evaluation, with named profiles.

The same :class:`RunConfig` is built by the command line (``--profile``, ``--set key=value``,
``--config file.yaml``), by the Python API (``RunConfig.from_profile('quick', 'denoise',
epochs=8)``) and by the notebooks (their papermill parameters carry the same names).

Its settings are grouped by concern, as BasicSR's option files are: four top-level ones say what
the run is (task, scale, profile, seed), the others sit in five groups (:data:`GROUPS`): ``space``
(the supernet), ``search`` (its schedule and optimisers), ``train`` (the derived network's
training), ``data`` and ``execution``. Every setting keeps one flat name, unique across groups:
``cfg.epochs`` and ``cfg.search.epochs`` (a read-only view) read the same value; ``--set
epochs=5`` and ``--set search.epochs=5``, ``{"epochs": 5}`` and ``{"search": {"epochs": 5}}``
set it. :meth:`RunConfig.to_dict` stays flat (run folders store it; :meth:`RunConfig.key`
hashes it), :meth:`RunConfig.to_nested` gives the grouped form the YAML files use.

Profiles scale the reference schedule (REFERENCE.md sections 5.2 and 6; the values are in
:mod:`hinas.engine.profiles`):

* ``smoke``: seconds; a tiny grid (f=4, L=2, B=2) on 32x32 crops, arch steps and validation
  both exercised. For tests.
* ``quick``: a few minutes on 2 CPU cores; small grid (f=4, L=3, B=3) on 32x32 crops.
* ``gpu``: the paper's grid and crops, shortened to fit about 8 minutes on one H100.
* ``paper``: the released code's full schedule (100 search epochs, arch steps from epoch 21,
  validation from epoch 61; training 600k iterations; the paper says 400k for denoising).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from hinas.engine.profiles import FAST_PATH, FAST_PATH_KEYS, PROFILES, coerce, profile_values
from hinas.space.spec import SupernetConfig
from hinas.errors import ConfigError, HinasError
from hinas.eval.evaluation import VALIDATION_PROTOCOLS
from hinas.safeio import finite_number, load_yaml_file, quote

__all__ = ["RunConfig", "PROFILES", "GROUPS", "FAST_PATH", "FAST_PATH_KEYS", "describe_settings"]

DEVICE_PATTERN = re.compile(r"cpu|cuda(:[0-9]{1,2})?")  # the devices a run can use (present or not: checked at run time)
# the settings' groups, in order, with what each holds (``hinas config show`` prints these headings)
GROUPS = {
    "space": "the supernet (hinas.space.spec.SupernetConfig)",
    "search": "the architecture search's noise levels, schedule, optimisers and loss",
    "train": "the derived network's training (or the DnCNN baseline's): network, schedule, loss, validation",
    "data": "the images: where, how many, noise, crops, augmentation, the W/A/V split, validation",
    "execution": "how a run executes: device, threads, cadence, speed levers",
}


def _setting(group: str | None, default, help: str) -> typing.Any:
    """A RunConfig field of ``group`` (None: top level) with its one-line ``help``."""
    meta = {"group": group, "help": help}
    if isinstance(default, list):
        return field(default_factory=functools.partial(list, default), metadata=meta)
    return field(default=default, metadata=meta)


_top = functools.partial(_setting, None)
_space, _search, _train, _data, _execution = (functools.partial(_setting, g) for g in GROUPS)


@dataclass
class RunConfig:
    # -- what the run is (top level) ---------------------------------------------------------
    task: str = _top("denoise", "what to restore: 'denoise' (grey, x - net(x)) or 'sr' (RGB, bicubic(x) + net(x))")
    scale: typing.Optional[int] = _top(None, "SR upscaling factor 2, 3 or 4 (None for denoising)")
    profile: str = _top("paper", "named preset the values came from: smoke, quick, gpu or paper")
    seed: int = _top(0, "seed of weights, crops, noise and the data split")
    # -- space: the supernet (SupernetConfig) ------------------------------------------------
    f: int = _space(10, "supernet channels per cell node at width level 0 (paper: 10 dn, 8 SR)")
    layers: int = _space(3, "L, number of cell layers of the supernet (paper: 3 dn, 2 SR)")
    steps: int = _space(4, "B, intermediate nodes per cell (paper: 4 dn, 3 SR)")
    levels: int = _space(3, "S, number of width levels in the outer search space (3)")
    width_factors: typing.List[float] = _space(
        [1.0, 1.5, 2.0], "channel multiplier per width level: [1, 1.5, 2] (code) or [1, 2, 4] (paper)")
    lwas: bool = _space(True, "layer-wise architecture sharing: one alpha per layer (True) or one for all layers")
    cell_sharing: str = _space(
        "eq5", "'eq5': one shared cell per target (HiNAS); 'eq6': a cell per incoming path (Auto-DeepLab)")
    residual: bool = _space(
        True, "residual learning: the network predicts the noise (dn) or the detail over bicubic (SR)")
    search_sigmoid: bool = _space(True, "sigmoid after the residual addition in the search network, as the released code")
    bn_init: str = _space(
        "torch1", "initial affine BatchNorm scale: 'torch1' = U(0, 1) as the release's torch 1.0.0, 'ones' = today's torch")
    memory_saving: str = _space(
        "none", "'none' (as the code) or 'recompute': checkpoint every mixed op; same gradients, less memory")
    partial_channels: int = _space(
        1, "K > 1: PC-DARTS partial channels, 1/K of each edge's channels through the ops (changes the search)")
    # -- search: its noise, schedule and optimisers (REFERENCE 6) ----------------------------
    # one search for all denoising levels, as the reference: a level drawn per sample
    search_sigma: typing.List[float] = _search(
        [30.0, 50.0, 70.0], "denoising noise levels (0-255) the search draws one of per sample")
    epochs: int = _search(100, "search epochs (paper: 100)")
    batch_size: int = _search(6, "search batch size (paper: 6 dn, 24 SR)")
    arch_start_epoch: int = _search(20, "architecture (alpha, beta) steps start after this epoch (paper: 20)")
    val_start_epoch: int = _search(60, "search validation starts after this epoch (paper: 60)")
    w_lr: float = _search(0.025, "search: initial SGD learning rate of the network weights")
    w_lr_min: float = _search(0.001, "search: final (minimum) weight learning rate")
    w_momentum: float = _search(0.9, "search: SGD momentum of the network weights")
    w_weight_decay: float = _search(3e-4, "search: weight decay of the network weights")
    lr_schedule: str = _search(
        "poly_cosine", "search weight-lr schedule: 'poly_cosine' (released code) or 'cosine' (paper: 0.025 -> 0.001)")
    cosine_t_max: int = _search(10, "period in epochs of the cosine part of 'poly_cosine'")
    a_lr: float = _search(1e-3, "search: Adam learning rate of the architecture parameters")
    a_weight_decay: float = _search(1e-3, "search: weight decay of the architecture parameters")
    search_ssim_weight: typing.Optional[float] = _search(
        None, "search loss weight of log10(1/SSIM) (None: 0.5 dn, 0.6 SR)")
    # -- train: the derived network's training (REFERENCE 5.2) -------------------------------
    model: str = _train("hinas", "network to train: 'hinas' (from a genotype) or 'dncnn' (denoising baseline)")
    net_f: typing.Optional[int] = _train(None, "derived network channels per node at level 0 (None: 20 dn, 16 SR)")
    node_channels: typing.Optional[typing.List[int]] = _train(
        None, "fixed channels per layer instead of the searched widths (HiNAS-w40 / -wm)")
    iterations: int = _train(
        600_000, "training iterations of the derived network (code: 600k; paper: 400k for denoising)")
    train_batch_size: typing.Optional[int] = _train(None, "training batch size (None: 24 dn, 16 SR)")
    train_lr: float = _train(0.05, "training: initial SGD learning rate (poly decay to 0)")
    train_weight_decay: float = _train(4e-5, "training: weight decay")
    bias_lr_factor: float = _train(2.0, "training: learning-rate multiplier of biases (which get no weight decay)")
    grad_clip: float = _train(5.0, "training: gradient-norm clip")
    train_ssim_weight: typing.Optional[float] = _train(
        None, "training loss weight of log10(1/SSIM) (None: 0.6; 0 = MSE/L1 only, Table 4)")
    # the released loss's value is NaN there: 'gradient' logs a finite one and counts the event
    nonpositive_ssim: str = _train(
        "gradient", "at a batch mean SSIM <= 0 (training, and the search too): 'gradient' = follow -1/(x ln 10) as "
                    "the code (finite value logged, event counted) or 'clamp' = floor SSIM at 1e-4 (zero gradient)")
    val_every: int = _train(1000, "training: validate every N iterations (once validation has started)")
    val_after_fraction: float = _train(0.75, "training: validate only after this fraction of the iterations")
    # -- data: images, noise, crops, the split, validation -----------------------------------
    data_root: typing.Optional[str] = _data(
        None, "folder with the benchmark datasets (None: $HINAS_DATA, else the embedded images)")
    max_images: typing.Optional[int] = _data(None, "use only the first N training images, sorted by name (None: all)")
    sigma: typing.List[float] = _data([50.0], "denoising noise level(s) (0-255) for training and validation")
    patch: int = _data(64, "side of the training crops in pixels (LR pixels for SR)")
    crops_per_image: int = _data(1, "random crops per training image per epoch (the reference: 1)")
    rescale_aug: bool = _data(
        True, "denoising patches: the code's RandomRescaleCrop (p=0.5, scale U(0.8, 1.2), PIL bicubic)")
    split_mode: str = _data(
        "reference", "how search images split into W/A/V: 'reference' (sorted by name) or 'random' (seeded)")
    val_fraction: float = _data(0.02, "fraction of the search images held out for validation")
    val_crop: typing.Optional[int] = _data(None, "validate on central crops of this size (None: whole images)")
    # picks the search's genotype and training's best weights (hinas.eval.evaluation)
    val_protocol: str = _data(
        "reference", "validation that picks the genotype / best weights: 'reference' (the code's patch-wise one, "
                     "one sigma per patch, float output) or 'standard' (whole images, one pass per sigma)")
    # -- execution: how, not what (key() leaves out device, threads, cadence, quiet) --------
    device: str = _execution("cpu", "torch device: 'cpu' or 'cuda' (the gpu and paper profiles use cuda)")
    threads: typing.Optional[int] = _execution(None, "CPU threads for torch (None: torch's default)")
    checkpoint_every: int = _execution(50, "steps between atomic checkpoints (and at every epoch end)")
    log_every: int = _execution(10, "steps between progress/history records")
    amp_bf16: bool = _execution(
        False, "bfloat16 autocast, CUDA or CPU (changes numerics: off unless a paired measurement allows it)")
    channels_last: bool = _execution(
        False, "channels-last (NHWC) memory format, CUDA and CPU (hinas.engine.fast.CPU_LEVERS)")
    device_data: bool = _execution(
        False, "training crops, flips and noise made on the device, no per-step host work (hinas.data.device_sampling)")
    compile: bool = _execution(
        False, "training: torch.compile the network in place, eager fallback on a compile error (hinas.engine.compile)")
    # the fast CUDA path (hinas.engine.fast), each lever a switch; on in the gpu/paper profiles
    cuda_graphs: bool = _execution(
        False, "CUDA: each training/search step captured once as a CUDA graph and replayed (needs fused_optimizer)")
    fused_optimizer: bool = _execution(False, "CUDA: fused SGD (learning rate as a device tensor) and capturable Adam")
    cudnn_benchmark: bool = _execution(False, "CUDA: cuDNN autotunes its convolution algorithms per shape")
    native_batchnorm: bool = _execution(
        False, "CUDA: BatchNorm through PyTorch's kernels instead of cuDNN's (fast with channels_last)")
    quiet: bool = _execution(False, "no progress bar")

    def __post_init__(self):
        self.validate()

    # -- the groups, read-only -------------------------------------------------------------------
    space = property(lambda self: self._view("space"), doc="the supernet's settings, read-only (cfg.space.f)")
    search = property(lambda self: self._view("search"), doc="the search's settings, read-only")
    train = property(lambda self: self._view("train"), doc="the training's settings, read-only")
    data = property(lambda self: self._view("data"), doc="the data settings, read-only")
    execution = property(lambda self: self._view("execution"), doc="the execution settings, read-only")

    def _view(self, group: str):
        values = dataclasses.asdict(self)  # copies: a view never changes the config
        return _VIEWS[group](**{name: values[name] for name in _GROUP_FIELDS[group]})

    def to_nested(self) -> dict:
        """``{"task", "scale", "profile", "seed", "space": {...}, "search": {...}, ...}``: the grouped
        form of :meth:`to_dict` (what a YAML config file may hold; :meth:`from_dict` reads it back)."""
        values = dataclasses.asdict(self)
        return {**{name: values[name] for name in _GROUP_FIELDS[None]},
                **{g: {name: values[name] for name in _GROUP_FIELDS[g]} for g in GROUPS}}

    # -- construction ------------------------------------------------------------------------
    # Each of these takes flat settings ({"epochs": 5}) and/or group mappings ({"search": {"epochs": 5}}).
    @classmethod
    def from_profile(cls, profile: str = "quick", task: str = "denoise", scale: int | None = None,
                     **overrides) -> "RunConfig":
        overrides = _flatten(overrides)
        values = profile_values(profile, task, scale)
        if scale is not None:
            values["scale"] = scale
        values.update(overrides)
        return cls.from_dict(values).check_starts(overrides)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        values = _flatten(values)
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(known)}")
        typed = {k: coerce(k, v, hints[k]) for k, v in values.items()}
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
        """Apply ``["key=value", "group.key=value", ...]`` (from ``--set``; a later one wins), parsing
        values as YAML scalars."""
        values, given = self.to_dict(), []
        for item in assignments or ():
            if "=" not in item:
                raise ConfigError(f"--set expects key=value or group.key=value, got {item!r}")
            key, raw = item.split("=", 1)
            key = key.strip()
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
            group, dot, name = key.rpartition(".")
            try:
                flat = _flatten({group: {name: value}} if dot else {key: value})
            except ConfigError as exc:
                raise ConfigError(f"--set {key}: {exc}") from None
            for k in flat:
                if k not in values:
                    raise ConfigError(f"unknown setting {k!r} in --set; known: {', '.join(values)}")
            values.update(flat)
            given += flat
        return RunConfig.from_dict(values).check_starts(given)

    def replace(self, **changes) -> "RunConfig":
        changes = _flatten(changes)
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
        """The flat settings, in the order run folders have always stored them (:data:`_FLAT_ORDER`)."""
        values = dataclasses.asdict(self)
        return {name: values[name] for name in _FLAT_ORDER}

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


# to_dict()'s order: the fields' order before they were grouped, kept so that run folders'
# config.yaml and the committed summaries read as they always have (a test checks it names every field)
_FLAT_ORDER = tuple("""
    task scale search_sigma sigma profile seed device data_root max_images f layers steps levels width_factors
    lwas cell_sharing residual search_sigmoid bn_init memory_saving partial_channels epochs batch_size patch
    crops_per_image arch_start_epoch val_start_epoch split_mode val_fraction val_crop val_protocol w_lr w_lr_min
    w_momentum w_weight_decay lr_schedule cosine_t_max a_lr a_weight_decay search_ssim_weight model net_f
    node_channels iterations train_batch_size train_lr train_weight_decay bias_lr_factor grad_clip
    train_ssim_weight nonpositive_ssim rescale_aug val_every val_after_fraction checkpoint_every log_every
    threads amp_bf16 channels_last device_data compile cuda_graphs fused_optimizer cudnn_benchmark
    native_batchnorm quiet""".split())
# each setting's group (None: top level), and each group's settings in declaration order
_GROUP_OF = {f.name: f.metadata["group"] for f in dataclasses.fields(RunConfig)}
_GROUP_FIELDS = {g: tuple(n for n, h in _GROUP_OF.items() if h == g) for g in (None, *GROUPS)}


def _group_view(group: str) -> type:
    """A frozen dataclass holding one group's values: ``cfg.train.iterations = 3`` raises."""
    hints = typing.get_type_hints(RunConfig)
    cls = dataclasses.make_dataclass(f"{group.title()}Settings", [(n, hints[n]) for n in _GROUP_FIELDS[group]],
                                     frozen=True, namespace={"to_dict": dataclasses.asdict})
    cls.__module__, cls.__doc__ = __name__, f"RunConfig's {group!r} settings, read-only: {GROUPS[group]}."

    def read_only(self, name, value=None):
        raise dataclasses.FrozenInstanceError(f"cfg.{group}.{name} is read-only (a copy of the config's "
                                              f"values); make a changed config with cfg.replace({name}=...)")

    cls.__setattr__ = cls.__delattr__ = read_only
    return cls


_VIEWS = {g: _group_view(g) for g in GROUPS}


def _flatten(values: Mapping) -> dict:
    """Flat settings from flat names and/or group mappings (``{"train": {"iterations": 5}}``).

    Refused, in one line: a setting under another group than its own (naming its own), an
    unknown group, a group that is no mapping, a setting given both flat and in its group.
    Unknown flat names pass through (:meth:`RunConfig.from_dict` names them)."""
    flat = {}
    for key, value in values.items():
        if key in GROUPS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"settings group {key!r} must be a mapping (name: value) of its settings, "
                                  f"got {str(value)[:40]!r}")
            for name, v in value.items():
                home = _GROUP_OF.get(name, "") if isinstance(name, str) else ""
                if home == key and name in values:
                    raise ConfigError(f"setting {name!r} given twice, as {name} and as {key}.{name}; keep one")
                if home is None:
                    raise ConfigError(f"setting {name!r} is not in a group: give it at the top level, not in {key!r}")
                if home != key:
                    raise ConfigError(f"setting {name!r} belongs to group {home!r}, not {key!r}" if home else
                                      f"unknown setting {str(name)[:40]!r} in group {key!r}; it holds: "
                                      f"{', '.join(_GROUP_FIELDS[key])}")
                flat[name] = v
        elif isinstance(value, Mapping) and key not in _GROUP_OF:
            raise ConfigError(f"unknown settings group {str(key)[:40]!r}; the groups: {', '.join(GROUPS)} "
                              f"(and the top-level {', '.join(_GROUP_FIELDS[None])})")
        else:
            flat[key] = value
    return flat


def describe_settings(cfg: RunConfig) -> list[dict]:
    """``[{"key", "group", "value", "help"}, ...]`` for every RunConfig field, in declaration order
    (top level first, then group by group); ``group`` is None for the top-level settings."""
    return [{"key": f.name, "group": f.metadata["group"], "value": getattr(cfg, f.name), "help": f.metadata["help"]}
            for f in dataclasses.fields(cfg)]
