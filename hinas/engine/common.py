"""Run mechanics shared by search and training: run folders, atomic checkpoints, seeds,
deterministic resumable batch streams, distributed helpers, tidy CSV files."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import platform
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from hinas.errors import ConfigError, HinasError


class TrainingDiverged(HinasError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def check_finite(params, what: str, ckpt_path) -> None:
    """Refuse to checkpoint non-finite weights or buffers (one host sync per checkpoint, not per step)."""
    flags = [torch.isfinite(p.detach()).all() for p in params if p.is_floating_point()]
    if flags and not bool(torch.stack(flags).all()):
        raise TrainingDiverged(f"{what} weights became NaN or infinite; not overwriting the last good "
                               f"checkpoint {ckpt_path}; start a new run (another --out) with a lower learning rate")


# ---------------------------------------------------------------------------------------------
# run folders
# ---------------------------------------------------------------------------------------------
def prepare_run_dir(out, config, resume: bool, kind: str, rank: int = 0) -> Path:
    """Create ``out`` for a new run, or check it for ``--resume``; never overwrite silently."""
    out = Path(out)
    cfg_file = out / "config.yaml"
    if out.exists() and any(out.iterdir()) and not resume:
        raise HinasError(f"run folder {out} already exists; pass --resume to continue it, or choose another --out")
    if resume and cfg_file.exists():
        import yaml

        saved = yaml.safe_load(cfg_file.read_text())
        now = config.to_dict()
        ignore = {"device", "quiet", "checkpoint_every", "log_every", "threads"}
        # a setting added after the run started counts as its default (old run folders stay resumable)
        defaults = {f.name: f.default for f in __import__("dataclasses").fields(config)}
        diff = sorted(k for k in now if k not in ignore and saved.get(k, defaults.get(k)) != now[k])
        if diff:
            raise HinasError(f"{out}: --resume with different settings ({', '.join(diff)}) than the run was "
                             f"started with; use the same settings or another --out")
    barrier()  # every process has checked the folder before the first one writes to it
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if not cfg_file.exists():
            atomic_write_text(cfg_file, config.to_yaml())
            atomic_write_text(out / "environment.json", json.dumps(environment_info(config, kind), indent=1))
    return out


def environment_info(config, kind: str) -> dict:
    info = {
        "kind": kind,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": device_name(config.device),
        "git_revision": git_revision(),
        "seed": config.seed,
        "world_size": world_size(),
    }
    try:
        from importlib.metadata import version

        info["hinas"] = version("hinas")
    except Exception:  # pragma: no cover - running from a source tree
        info["hinas"] = "unknown"
    return info


def git_revision() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: str) -> str:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


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


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def atomic_write_text(path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_torch_save(obj, path) -> None:
    """temp file + fsync + rename: a crash leaves the old checkpoint or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path):
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable or not a tensor-only file
        raise HinasError(f"{path}: cannot load this checkpoint safely ({exc.__class__.__name__}); "
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
# batches: deterministic given (seed, cycle), resumable from (cycle, position)
# ---------------------------------------------------------------------------------------------
class BatchStream:
    """Batches from a :class:`~hinas.data.PatchDataset` in a seeded order per cycle.

    Cycle ``c`` visits every sample once in the order ``randperm(n, seed=(seed, c))`` with the
    dataset's epoch set to ``c``; the stream's whole state is ``(cycle, position)``, so a
    resumed run draws exactly the batches the interrupted one would have. With several
    processes, each takes its share ``[rank::world]`` of every global batch.
    """

    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world = rank, world
        self.cycle, self.position = 0, 0
        self._perm_cycle, self._perm = None, None

    @property
    def batches_per_cycle(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def state(self) -> dict:
        return {"cycle": self.cycle, "position": self.position}

    def load_state(self, state: dict) -> None:
        self.cycle, self.position = int(state["cycle"]), int(state["position"])

    def _permutation(self):
        if self._perm_cycle != self.cycle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.cycle)
            self._perm = torch.randperm(len(self.dataset), generator=g).tolist()
            self._perm_cycle = self.cycle
        return self._perm

    def next(self):
        if self.position >= self.batches_per_cycle:
            self.cycle += 1
            self.position = 0
        perm = self._permutation()
        self.dataset.set_epoch(self.cycle)
        start = self.position * self.batch_size
        idx = perm[start : start + self.batch_size]
        self.position += 1
        if self.world > 1:
            idx = idx[self.rank :: self.world] or idx[:1]
        items = [self.dataset[i] for i in idx]
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])


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
