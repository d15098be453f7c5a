"""Run mechanics shared by search and training: the training set a run reads, atomic files
and checkpoints, seeds and RNG state, devices, provenance, distributed helpers. The run folder
itself (identity, lock, state) is :mod:`hinas.engine.runfolder`.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import os
import platform
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from hinas.errors import ConfigError, HinasError
from hinas.safeio import atomic_write_text, quote, write_bytes_durably  # noqa: F401 (the engine's writers)


class TrainingDiverged(HinasError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def check_finite(params, what: str, ckpt_path) -> None:
    """Refuse to checkpoint non-finite weights or buffers (one host sync per checkpoint, not per step)."""
    flags = [torch.isfinite(p.detach()).all() for p in params if p.is_floating_point()]
    if flags and not bool(torch.stack(flags).all()):
        raise TrainingDiverged(f"{what} weights became NaN or infinite; {kept_checkpoint(ckpt_path)}; "
                               f"start a new run (another --out) with a lower learning rate")


def kept_checkpoint(ckpt_path) -> str:
    """What a diverged run leaves behind, stated truthfully."""
    p = Path(ckpt_path)
    if p.exists():
        return f"the last good checkpoint is kept in {quote(p)}"
    return "no checkpoint was written"


def training_records(cfg) -> tuple[list, list]:
    """The task's whole training set sorted by name, and the part a run uses (``max_images``).

    One place for what search, training and their time budgets read: the identity fingerprints
    the whole list, the run takes the first ``max_images``. For SR, a set that allows grey images
    gives them as equal-channel RGB (sets that do not are refused by the patch sampler)."""
    from hinas.data import task_datasets

    train = task_datasets(cfg.task, cfg.data_root)["train"]
    all_records = sorted(train.records, key=lambda r: r.name)
    if cfg.task == "sr" and train.allows_grey:  # e.g. the embedded photos' grey 'brick'
        all_records = [r.as_rgb() for r in all_records]
    return all_records, (all_records[: cfg.max_images] if cfg.max_images else all_records)


def on_rank0(fn):
    """Run ``fn`` on rank 0 only; a refusal there is raised on every process (one line each)."""
    err, result = None, None
    if rank() == 0:
        if world_size() == 1:
            return fn()
        try:
            result = fn()
        except HinasError as exc:
            err = str(exc)
    err = broadcast_object(err)
    if err:
        raise HinasError(err)
    return result


@contextlib.contextmanager
def deterministic(enabled: bool):
    """``torch.use_deterministic_algorithms`` for the length of a run, then the caller's setting."""
    before = torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn)


def plain_optimizer_state(state: dict) -> dict:
    """An optimiser ``state_dict`` as the eager path keeps it: the fast path's device learning
    rates as floats and its kernel flags off (:func:`hinas.engine.fast.arm_optimizer` sets them
    again), so either path can continue a checkpoint of the other."""
    for g in state.get("param_groups", []):
        if isinstance(g.get("lr"), torch.Tensor):
            g["lr"] = float(g["lr"])
        for flag, plain in (("fused", None), ("foreach", None), ("capturable", False)):
            if flag in g:
                g[flag] = plain
    return state


def provenance(device="cpu") -> dict:
    """Where and with what a result was made: the one provenance block of run folders
    (``environment.json``), campaign summaries and benchmark JSON files."""
    try:
        from importlib.metadata import version

        hinas_version = version("hinas")
    except Exception:  # pragma: no cover - running from a source tree
        hinas_version = "unknown"
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "host": platform.node(),
        "device": device_name(device),
        "git_revision": git_revision(),
        "hinas": hinas_version,
        "command": " ".join(["hinas"] + sys.argv[1:]) if sys.argv else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def environment_info(config, kind: str) -> dict:
    return {"kind": kind, **provenance(config.device), "seed": config.seed, "world_size": world_size()}


def git_revision() -> str | None:
    """The checkout's commit (``+dirty`` with uncommitted changes); where the tree travelled
    without its ``.git`` (a GPU machine), the ``HINAS_GIT_REVISION`` its caller set."""
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return os.environ.get("HINAS_GIT_REVISION") or None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("HINAS_GIT_REVISION") or None


def device_name(device: str) -> str:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def gpu_model(name) -> str | None:
    """An NVIDIA GPU's model in a device name (:func:`device_name`: 'NVIDIA H100 80GB HBM3' ->
    'H100'), else None: how tables name a GPU and what names its speed report
    (``results/bench/gpu_speed_<model>.json``, scripts/gpu_window.sh)."""
    m = re.search(r"\b([A-Z][0-9]{2,3})\b", name) if isinstance(name, str) and "NVIDIA" in name else None
    return m.group(1) if m else None


def apply_threads(config) -> None:
    if getattr(config, "threads", None):
        torch.set_num_threads(int(config.threads))


def resolve_device(device: str) -> torch.device:
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for but CUDA is not available; use --set device=cpu")
        if world_size() > 1:
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(device)


def check_device(device: str) -> str:
    """``device`` checked before anything runs: one of ``cpu``, ``cuda``, ``cuda:N``, and present
    on this machine (CUDA available, ``N`` < the number of GPUs). Returns the name as given
    (stripped); raises :class:`~hinas.errors.ConfigError` with one line naming the fix."""
    import re

    name = str(device).strip() if device is not None else ""
    m = re.fullmatch(r"cpu|cuda(?::(\d+))?", name)
    if not m:
        raise ConfigError(f"device {device!r} is not one of cpu, cuda, cuda:N; use --device cpu or --device cuda")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for but CUDA is not available on this machine; use --device cpu")
        count = torch.cuda.device_count()
        if m.group(1) is not None and int(m.group(1)) >= count:
            raise ConfigError(f"device {name!r} asked for but this machine has {count} GPU(s) "
                              f"(cuda:0..cuda:{count - 1}); use one of them")
    return name


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
CHECKPOINT = "checkpoint.pt"  # a run folder's checkpoint (hinas.engine.runfolder.RunState)


def atomic_torch_save(obj, path) -> None:
    """temp file + fsync + rename: a crash leaves the old checkpoint or the new one, never half."""
    buf = io.BytesIO()
    torch.save(obj, buf)  # serialise first: a full disk then fails as an OSError naming the file
    write_bytes_durably(path, buf.getbuffer())


def load_checkpoint(path):
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable or not a tensor-only file
        raise HinasError(f"{quote(path)}: cannot load this checkpoint safely ({exc.__class__.__name__}); "
                         f"it is damaged or was not written by hinas") from None


def write_csv(path, rows: list[dict]) -> None:
    if not rows:
        return
    fields: list[str] = []
    for r in rows:
        for k in r:
            if k not in fields:
                fields.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------
# seeds and RNG state (stored as plain lists so checkpoints load with weights_only=True)
# ---------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# distributed (torchrun)
# ---------------------------------------------------------------------------------------------
def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def init_distributed(device: torch.device) -> None:
    if world_size() > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def all_reduce_gradients(params) -> None:
    """Average gradients over processes in one flat all-reduce (weights and alpha/beta alike)."""
    if world_size() == 1 or not dist.is_initialized():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def broadcast_object(obj):
    if world_size() == 1 or not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1 and dist.is_initialized():
        dist.barrier()
