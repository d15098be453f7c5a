"""The named profiles' values and the checking of one setting's value, for :mod:`hinas.engine.config`.

:func:`profile_values` gives the settings a profile (and a task) sets over the fields' defaults;
:func:`coerce` checks and converts one value to its field's type. Both work on flat setting
names; the settings' groups live on the fields (:class:`hinas.engine.config.RunConfig`).
"""

from __future__ import annotations

import typing

from hinas.errors import ConfigError, HinasError
from hinas.safeio import finite_number

# the fast path's levers (hinas.engine.fast): how a step runs, not what it computes (float rounding
# apart), so a run may be continued with other values; on the CPU only channels_last acts
FAST_PATH_KEYS = ("cuda_graphs", "fused_optimizer", "cudnn_benchmark", "native_batchnorm", "channels_last")
FAST_PATH = {k: True for k in FAST_PATH_KEYS}


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


# channels_last in the CPU profiles too (issue 32): it changes no number beyond float rounding (the
# equivalence test, tests/test_cpu_levers.py: 50 training and 10 search steps, <= 1e-4 each), and
# one thread of this project's 2-core CPU (beside two other jobs) measured, NCHW against it: quick
# size, a training step 1.24-1.25x as fast, a supernet step 1.02-1.09x (two runs); smoke size
# 0.99x / 1.02x (no change); paper size 1.29x / 1.17x (results/bench/cpu_speed_amd-epyc-2c.json).
CPU_FAST_PATH = {k: True for k in ("channels_last",)}  # the levers of FAST_PATH that act on the CPU


def _smoke(task):
    return dict(f=4, layers=2, steps=2, epochs=4, batch_size=2, patch=32 if task == "denoise" else 16,
                crops_per_image=2, arch_start_epoch=0, val_start_epoch=0, val_crop=48, val_protocol="standard", max_images=8,
                net_f=4, iterations=12, train_batch_size=2, val_every=4, val_after_fraction=0.5,
                checkpoint_every=2, log_every=2, threads=1, **CPU_FAST_PATH)


def _quick(task):
    return dict(f=4, layers=3, steps=3, epochs=12, batch_size=4, patch=32 if task == "denoise" else 24,
                crops_per_image=4, arch_start_epoch=4, val_start_epoch=6, val_crop=96, val_protocol="standard", max_images=None,
                net_f=8, iterations=1200, train_batch_size=8, val_every=50, val_after_fraction=0.5, nonpositive_ssim="clamp",
                # arch lr x30: the quick search takes ~100x fewer architecture steps than the paper's;
                # with 1e-3 alpha ends within 0.0005 of uniform (measured), with 0.03 it moves ~0.06
                a_lr=0.03, checkpoint_every=25, log_every=10, threads=1, **CPU_FAST_PATH)


def _gpu(task):
    return dict(epochs=40, arch_start_epoch=8, val_start_epoch=24, val_crop=None, iterations=20_000,
                val_protocol="reference", val_every=1000, checkpoint_every=200, log_every=50, device="cuda",
                **FAST_PATH)


def _paper(task):
    return dict(device="cuda", val_protocol="reference", **FAST_PATH)


_PROFILE_VALUES = {"smoke": _smoke, "quick": _quick, "gpu": _gpu, "paper": _paper}
PROFILES = tuple(_PROFILE_VALUES)


def profile_values(profile: str, task: str, scale) -> dict:
    """The flat settings a profile sets for a task, over the fields' defaults."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return {"task": task, "scale": scale, "profile": profile, **_task_defaults(task, scale),
            **_PROFILE_VALUES[profile](task)}


def coerce(name: str, value, annotation):
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
        return [coerce(name, v, args[0]) for v in value]
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
