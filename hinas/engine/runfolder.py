"""A run folder and what it holds: the run's identity (settings, data fingerprint, genotype,
code version; stored inside its checkpoint and compared on ``--resume``), the exclusive lock
on the folder for the life of the run (nothing written before every input has been checked),
and the run's state (model, named optimisers, named batch streams, RNG, counters), saved and
restored in one place.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from hinas.engine.common import (CHECKPOINT, atomic_torch_save, check_finite, environment_info, load_checkpoint,
                                 plain_optimizer_state, rng_state, set_rng_state)
from hinas.engine.config import FAST_PATH_KEYS
from hinas.errors import HinasError
from hinas.safeio import atomic_write_text, quote

# ---------------------------------------------------------------------------------------------
# run identity: everything that defines a run, stored inside its checkpoint
# ---------------------------------------------------------------------------------------------
IDENTITY_FORMAT = 1
# settings that change how a run is executed or reported, never its result
EXECUTION_KEYS = ("device", "quiet", "checkpoint_every", "log_every", "threads", *FAST_PATH_KEYS)


def code_version() -> str:
    try:
        from importlib.metadata import version

        return version("hinas")
    except Exception:  # pragma: no cover - running from a source tree
        return "unknown"


def data_fingerprint(cfg, records, used: int | None = None) -> dict:
    """Where the images come from and which they are.

    ``records`` is the task's whole training set (sorted by name) and ``used`` how many of them
    the run takes (``max_images``). The fingerprint holds the resolved data root, a digest of
    every training file's place and size (an image added, removed, renamed or resized changes
    it), and a digest of a sample of the used images' pixels (an image edited in place changes
    it, a copy of the same files to a new disk does not). The embedded photos have no files:
    their names and shapes stand in.
    """
    from hinas.data.datasets import resolve_data_root

    root = resolve_data_root(cfg.data_root)
    root_s = str(Path(root).resolve()) if root is not None else None
    files = hashlib.sha256()
    for r in records:
        if r.path:
            p = Path(r.path).resolve()
            where = os.path.relpath(p, root_s) if root_s else str(p)
            size = p.stat().st_size if p.exists() else -1
        else:
            where, size = f"embedded:{r.name}", "x".join(map(str, r.image.shape))
        files.update(f"{where}\0{size}\n".encode())
    used = len(records) if used is None else used
    pixels = hashlib.sha256()
    for r in records[:used]:
        flat = np.ascontiguousarray(r.image).reshape(-1)
        pixels.update(repr(r.image.shape).encode())
        pixels.update(np.ascontiguousarray(flat[:: max(1, flat.size // 4096)]).tobytes())
    return {"root": root_s if root_s else "embedded images", "images": len(records), "used": used,
            "files": files.hexdigest()[:16], "pixels": pixels.hexdigest()[:16]}


def genotype_hash(genotype) -> str | None:
    if genotype is None:
        return None
    blob = json.dumps(genotype.architecture(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_identity(kind: str, cfg, records, genotype=None, used: int | None = None) -> dict:
    """The identity of a run: kind, settings (not execution ones), data, genotype, code.

    ``records``: the whole training set; ``used``: how many of them the run takes."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in EXECUTION_KEYS and k != "data_root"}
    return {"format": IDENTITY_FORMAT, "kind": kind, "code": code_version(), "settings": settings,
            "data": data_fingerprint(cfg, records, used), "genotype": genotype_hash(genotype)}


def _short(v) -> str:
    s = quote(json.dumps(v) if not isinstance(v, str) else v)
    return s if len(s) <= 40 else s[:37] + "..."


def identity_differences(saved: dict, now: dict) -> list[str]:
    """Human-readable differences between two identities (empty when they match)."""
    if not isinstance(saved, dict) or saved.get("format") != IDENTITY_FORMAT:
        return ["the checkpoint has no run identity (written by an older hinas or not by hinas)"]
    diffs = []
    if saved.get("kind") != now["kind"]:
        return [f"the folder holds a {_short(saved.get('kind'))} run, not a {now['kind']} run"]
    s_set, n_set = saved.get("settings"), now["settings"]
    s_set = s_set if isinstance(s_set, dict) else {}
    first = ("profile", "task", "scale", "model", "seed")  # the differences that explain the others
    for k in sorted(set(s_set) | set(n_set), key=lambda k: (k not in first, first.index(k) if k in first else 0, k)):
        if s_set.get(k, "<absent>") != n_set.get(k, "<absent>"):
            diffs.append(f"{k} (run {_short(s_set.get(k))}, now {_short(n_set.get(k))})")
    s_data, n_data = saved.get("data"), now["data"]
    s_data = s_data if isinstance(s_data, dict) else {}
    if s_data.get("root") != n_data["root"]:
        diffs.append(f"data root (run {_short(s_data.get('root'))}, now {_short(n_data['root'])})")
    elif s_data.get("files") != n_data["files"]:
        diffs.append(f"data files (run {s_data.get('images')} images, now {n_data['images']}; "
                     f"names or sizes changed under the data root)")
    elif s_data != n_data:
        diffs.append("image content (the same files were edited)")
    if saved.get("genotype") != now["genotype"]:
        diffs.append("genotype (another architecture than the run was started with)")
    if saved.get("code") != now["code"]:
        diffs.append(f"hinas version (run {_short(saved.get('code'))}, now {_short(now['code'])})")
    return diffs


# ---------------------------------------------------------------------------------------------
# run folders: one lock, validate before the first write, never overwrite silently
# ---------------------------------------------------------------------------------------------
SETUP_FILES = {"config.yaml", "environment.json", "network.json", "genotype.json"}


class RunFolderBusy(HinasError):
    """Another process holds the run folder."""


def _entries(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if not p.name.endswith(".tmp"))


class RunFolder:
    """A run folder held for the life of a run.

    :meth:`open` takes an exclusive ``flock`` on the folder itself (so the lock writes no
    file into it; rank 0 holds it under DDP), checks what is there against ``--resume`` and
    returns the checkpoint to continue from, or ``None`` for a new run. Nothing is written
    until :meth:`begin`, which the caller reaches only after every input has been checked.
    """

    def __init__(self, out, kind: str, resume: bool, rank: int = 0, quiet: bool = False):
        self.out = Path(out)
        self.kind, self.resume, self.rank, self.quiet = kind, resume, rank, quiet
        self.ckpt_path = self.out / CHECKPOINT
        self._fd = None
        self._created = None  # the top folder this run created, until its first write

    # -- locking ------------------------------------------------------------------------------
    def _lock(self) -> None:
        import fcntl

        q = quote(self.out)
        if self.out.exists() and not self.out.is_dir():
            raise HinasError(f"{q}: --out is a file, not a folder; choose a folder path")
        if not self.out.exists():
            top = self.out.absolute()
            while not top.parent.exists():
                top = top.parent
            try:
                self.out.mkdir(parents=True)
                self._created = top  # the first folder this run made: removed again if refused
            except FileExistsError:
                pass
            except OSError as exc:
                raise HinasError(f"{q}: cannot create the run folder ({exc.strerror}); "
                                 f"choose an --out you can write to") from None
        if not os.access(self.out, os.W_OK | os.X_OK):
            raise HinasError(f"{q}: the run folder is not writable; choose an --out you can write to")
        fd = os.open(self.out, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderBusy(f"{q}: another hinas run is using this folder right now; wait for it to "
                                f"finish or choose another --out") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if self._created:  # a refused new run leaves no empty folder behind
            p = self.out.absolute()
            try:
                while True:
                    p.rmdir()
                    if p == self._created:
                        break
                    p = p.parent
            except OSError:
                pass
            self._created = None

    def open(self):
        """Lock and inspect the folder; the checkpoint dict to resume from, or ``None``."""
        if self.rank != 0:
            return None
        self._lock()
        q = quote(self.out)
        present = _entries(self.out)
        if not self.resume:
            if present:
                raise HinasError(f"{q}: run folder already exists; pass --resume to continue it, "
                                 f"or choose another --out")
            return None
        if self.ckpt_path.exists():
            ck = load_checkpoint(self.ckpt_path)
            if not isinstance(ck, dict) or not {"model", "state", "rng"} <= set(ck):
                raise HinasError(f"{quote(self.ckpt_path)}: not a hinas checkpoint (its keys are missing); "
                                 f"choose another --out")
            return ck
        if present:
            raise HinasError(f"{q}: --resume, but the folder has no {CHECKPOINT} (it holds "
                             f"{', '.join(quote(n) for n in present[:4])}{', ...' if len(present) > 4 else ''}); "
                             f"refusing to start over earlier work: choose another --out")
        if not self.quiet:
            print(f"hinas: {q} has no checkpoint yet; starting a new run there", file=sys.stderr)
        return None

    def check_identity(self, ck, identity: dict) -> None:
        if ck is None:
            return
        diffs = identity_differences(ck.get("identity"), identity)
        if len(diffs) > 6:  # e.g. another --profile: name the first few
            diffs = diffs[:5] + [f"and {len(diffs) - 5} more settings"]
        if diffs:
            raise HinasError(f"{quote(self.out)}: --resume with a different run than the checkpoint holds: "
                             f"{'; '.join(diffs)}; resume with the same settings, data and genotype, "
                             f"or choose another --out")

    def begin(self, config, files: dict | None = None, first_checkpoint=None) -> None:
        """The first write, once every input has been checked (rank 0).

        A new run writes its first checkpoint (which carries the identity) before anything
        else; a resumed one restores the readable copies that are missing (a run killed
        between its first checkpoint and them, or a deleted ``config.yaml``). ``files``
        (name -> text) are written only where absent: they describe the same run.
        """
        if self.rank != 0:
            return
        if first_checkpoint is not None:
            first_checkpoint()
        self._created = None  # the folder now holds a checkpoint: keep it whatever happens next
        for name, text in (files or {}).items():
            if not (self.out / name).exists():
                atomic_write_text(self.out / name, text)
        # a readable copy of the settings; the identity in the checkpoint is what --resume checks
        cfg_file = self.out / "config.yaml"
        if not _readable_mapping(cfg_file):
            atomic_write_text(cfg_file, config.to_yaml())
        env_file = self.out / "environment.json"
        if not env_file.exists():
            atomic_write_text(env_file, json.dumps(environment_info(config, self.kind), indent=1))


def _readable_mapping(path: Path) -> bool:
    import yaml

    try:
        return isinstance(yaml.safe_load(path.read_text()), dict)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return False


# ---------------------------------------------------------------------------------------------
# the state of a run: model, named optimisers, named batch streams, RNG, counters, identity
# ---------------------------------------------------------------------------------------------

class RunState:
    """Everything needed to continue a run bit for bit, saved and restored in one place.

    ``optimisers`` and ``streams`` are named (``{"opt_w": ..., "opt_a": ...}``); the names are
    the checkpoint's keys. ``state`` is the loop's plain dict (counters, history, best).
    """

    def __init__(self, what: str, identity: dict, model, optimisers: dict, streams: dict, state: dict, path):
        self.what, self.identity = what, identity
        self.model, self.optimisers, self.streams = model, optimisers, streams
        self.state = state
        self.path = Path(path)

    def checkpoint(self) -> dict:
        ck = {"identity": self.identity, "model": self.model.state_dict(), "rng": rng_state(), "state": self.state}
        ck.update({name: plain_optimizer_state(opt.state_dict()) for name, opt in self.optimisers.items()})
        ck.update({name: s.state() for name, s in self.streams.items()})
        return ck

    def save(self) -> None:
        check_finite(self.model.state_dict().values(), self.what, self.path)
        atomic_torch_save(self.checkpoint(), self.path)

    def restore(self, ck: dict) -> None:
        q = quote(self.path)
        missing = [k for k in [*self.optimisers, *self.streams] if k not in ck]
        if missing:
            raise HinasError(f"{q}: not a checkpoint of this kind of run (no {', '.join(missing)}); "
                             f"choose another --out")
        weights = ck["model"]
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise HinasError(f"{q}: the checkpoint's 'model' is not a set of tensors; choose another --out")
        bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise HinasError(f"{q}: the checkpoint's weights hold NaN or infinite values ({quote(bad[0])}); "
                             f"the run diverged: start a new one with another --out")
        try:
            self.model.load_state_dict(weights)
            for name, opt in self.optimisers.items():
                opt.load_state_dict(ck[name])
            for name, s in self.streams.items():
                s.load_state(ck[name])
            set_rng_state(ck["rng"])
            state = dict(ck["state"])
            for k, fresh in self.state.items():  # the loop's counters keep their types
                if fresh is not None and not isinstance(state[k], type(fresh)):
                    raise TypeError(k)
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise HinasError(f"{q}: the checkpoint does not fit this run ({exc.__class__.__name__}); "
                             f"it is damaged or from another version: choose another --out") from None
        self.state.clear()
        self.state.update(state)


def open_run(folder: RunFolder, kind: str, cfg, device, genotype=None):
    """The opening every run shares, before its first write: threads and processes set up, the
    folder locked and inspected (rank 0), the training set read and the run's identity checked
    against the checkpoint. Returns ``(checkpoint or None, records the run uses, identity)``."""
    from hinas.engine.common import apply_threads, init_distributed, on_rank0, training_records

    apply_threads(cfg)
    init_distributed(device)
    ck = on_rank0(folder.open)
    all_records, records = training_records(cfg)
    identity = run_identity(kind, cfg, all_records, genotype, used=len(records))
    on_rank0(lambda: folder.check_identity(ck, identity))
    return ck, records, identity
