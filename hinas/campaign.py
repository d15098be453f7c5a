"""GPU campaigns: run a plan's next undone items inside a time budget; verify the results.

``hinas campaign run --plan NAME|FILE --budget SECONDS --results DIR`` works through a plan (a
YAML file; :data:`PLANS_DIR` holds ``smoke`` and ``paper-gpu``) in order, skipping finished
items, and stops cleanly before the budget ends, so that one command per GPU window does the
most work and loses none:

* each item works in ``DIR/<item>/``; search and training run in ``DIR/<item>/run/`` with the
  engine's atomic checkpoints, and a piece that meets the deadline checkpoints and pauses
  (``stop_at``); the next call resumes it. A half-done item that cannot be resumed (damaged
  checkpoint, changed settings) is restarted from scratch, never patched;
* a finished item leaves its results in ``DIR/<item>/`` (``summary.json`` with metrics,
  params, FLOPs, timings, per-image scores and provenance; genotype; safetensors weights;
  histories; alpha/beta CSVs), then the ``done`` marker, written last and atomically; only
  then is the work folder removed. An item without ``done`` is pending, whatever else is there;
* an item that fails (divergence, out of memory) is recorded in ``error.json`` and skipped,
  with the items that depend on it; ``--retry-failed`` tries it again.

Item kinds: ``bench`` (Eq. 5 vs Eq. 6 memory/time, search-step speed), ``search``, ``train``
(``genotype_from`` a search item, or ``model: dncnn``), ``eval`` (``network_from`` a train
item; protocols x precisions, each part saved as it finishes). ``budget: SECONDS`` on a search
or train item sizes its schedule to fit (:mod:`hinas.engine.budget`); ``long: true`` runs its config's fixed
length over as many calls as it takes, optionally with a learning ``curve`` (:mod:`hinas.campaign_long`, which
also keeps a train item ``waiting`` while its search did not move, and estimates the seconds to finish).

``hinas verify DIR`` re-evaluates every stored network on the CPU against its stored
per-image scores (:data:`TOLERANCE_DB`).

Only numpy/torch/scipy/PIL/scikit-image/pyyaml/safetensors/tqdm are imported on these paths,
so the runner works on a bare GPU machine (no graphviz, bm3d, papermill, jupyter-book).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hinas.errors import ConfigError, HinasError

PLANS_DIR = Path(__file__).resolve().parent / "configs" / "plans"
DONE = "done"
KINDS = ("bench", "search", "train", "eval")
# |stored - recomputed| per image, in dB: an fp32 result re-evaluated on the CPU may differ from
# the GPU's by float rounding (a few uint8 levels in the standard protocol: ~1e-3 dB); a bf16
# result is re-evaluated in fp32, so its bound is the bf16 effect itself.
TOLERANCE_DB = {"fp32": 0.05, "bf16": 0.5}
# seconds kept free at the end of a call (at most 10% of its budget) for an item's final files
FINAL_RESERVE = 10.0


# ---------------------------------------------------------------------------------------------
# plans
# ---------------------------------------------------------------------------------------------
@dataclass
class Item:
    name: str
    kind: str
    config: dict = field(default_factory=dict)
    budget: float | None = None  # search/train: schedule sized to this many seconds
    estimate: float = 5.0  # seconds needed to make useful progress; not started with less left
    genotype_from: str | None = None
    network_from: str | None = None
    options: dict = field(default_factory=dict)  # bench / eval settings

    @property
    def depends(self) -> list[str]:
        return [d for d in (self.genotype_from, self.network_from) if d]


@dataclass
class Plan:
    name: str
    description: str
    items: list[Item]
    path: str


def list_plans() -> list[str]:
    return sorted(p.stem for p in PLANS_DIR.glob("*.yaml"))


def load_plan(name_or_file) -> Plan:
    """A plan by name (``hinas/configs/plans/NAME.yaml``) or YAML file; checked before any run."""
    path = Path(str(name_or_file))
    if not path.suffix:
        path = PLANS_DIR / f"{name_or_file}.yaml"
        if not path.exists():
            raise ConfigError(f"unknown plan {name_or_file!r}; known plans: {', '.join(list_plans())} "
                              f"(or give a YAML file)")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such plan file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list) or not data["items"]:
        raise ConfigError(f"{path}: a plan is a mapping with a non-empty 'items' list")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a mapping of settings")
    items: list[Item] = []
    seen: set[str] = set()
    for n, raw in enumerate(data["items"], 1):
        where = f"{path}: item {n}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping")
        raw = dict(raw)
        name = str(raw.pop("name", ""))
        if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
            raise ConfigError(f"{where}: 'name' must be letters, digits, '-', '_' or '.', got {name!r}")
        where = f"{path}: item {name!r}"
        if name in seen:
            raise ConfigError(f"{where}: the name is used twice")
        kind = raw.pop("kind", None)
        if kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        config = dict(defaults) if kind in ("search", "train") else {}
        extra = raw.pop("config", None) or {}
        if not isinstance(extra, dict):
            raise ConfigError(f"{where}: 'config' must be a mapping of settings")
        config.update(extra)
        item = Item(name=name, kind=kind, config=config, budget=raw.pop("budget", None),
                    estimate=float(raw.pop("estimate", 5.0)), genotype_from=raw.pop("genotype_from", None),
                    network_from=raw.pop("network_from", None), options=raw)
        for dep in item.depends:
            if dep not in seen:
                raise ConfigError(f"{where}: depends on {dep!r}, which is not an earlier item of the plan")
        if item.budget is not None and (not isinstance(item.budget, (int, float)) or item.budget <= 0):
            raise ConfigError(f"{where}: budget must be a positive number of seconds, got {item.budget!r}")
        if kind in ("search", "train"):
            _item_config(item, None, None)  # validates the settings now, before any run
        if kind == "train" and item.config.get("model", "hinas") == "hinas" and not item.genotype_from:
            raise ConfigError(f"{where}: a hinas train item needs 'genotype_from: <search item>' (or model: dncnn)")
        if kind == "eval" and not item.network_from:
            raise ConfigError(f"{where}: an eval item needs 'network_from: <train item>'")
        unknown = set(item.options) - _OPTIONS[kind]
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(_OPTIONS[kind]))}")
        if kind in ("search", "train"):
            from hinas.campaign_long import check_item

            check_item(item, where)  # long / curve options
        items.append(item)
        seen.add(name)
    return Plan(name=str(data.get("name") or path.stem), description=str(data.get("description", "")),
                items=items, path=str(path))


_OPTIONS = {
    "bench": {"batch", "size", "f", "layers", "steps", "levels", "repeats", "speed_steps", "speed_profile"},
    "search": {"long"},
    "train": {"long", "curve"},
    "eval": {"datasets", "sigma", "protocols", "precisions", "limit"},
}


# what ``campaign run --set`` may change: how items run, never what they compute
SETTABLE = ("cuda_graphs", "fused_optimizer", "cudnn_benchmark", "native_batchnorm", "channels_last", "threads",
            "checkpoint_every")


def parse_settings(assignments) -> dict:
    """``["key=value", ...]`` of ``campaign run --set`` (values read as YAML scalars); only
    :data:`SETTABLE` keys, so a call changes how the plan runs, never its results."""
    out = {}
    for item in assignments or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or key not in SETTABLE:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(SETTABLE)} "
                              f"(settings that change results belong in the plan file)")
        try:
            out[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key] = raw
    return out


def _item_config(item: Item, device, data_root, settings: dict | None = None):
    from hinas.engine.config import RunConfig

    values = {**item.config, **(settings or {})}
    profile = values.pop("profile", "smoke")
    task = values.pop("task", "denoise")
    scale = values.pop("scale", None)
    if device is not None:
        values["device"] = device
    if data_root is not None:
        values["data_root"] = data_root
    values.setdefault("quiet", True)
    try:
        return RunConfig.from_profile(profile, task, scale, **values)
    except ConfigError as exc:
        raise ConfigError(f"plan item {item.name!r}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# item folders
# ---------------------------------------------------------------------------------------------
def _write_json(path: Path, obj) -> None:
    from hinas.engine.common import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1, default=str) + "\n")


def _read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return default


def item_status(results: Path, item: Item) -> dict:
    folder = results / item.name
    progress = _read_json(folder / "progress.json", {}) or {}
    entry = {"name": item.name, "kind": item.kind, "status": "pending", "depends": item.depends,
             "pieces": progress.get("pieces", 0), "seconds": progress.get("seconds", 0.0)}
    if (folder / DONE).exists():
        entry["status"] = "done"
        summary = _read_json(folder / "summary.json", {}) or {}
        for key in ("device", "metrics"):
            if key in summary:
                entry[key] = summary[key]
    elif (folder / "error.json").exists():
        entry["status"] = "failed"
        entry["error"] = (_read_json(folder / "error.json", {}) or {}).get("error")
    elif progress.get("last"):
        entry["last"] = progress["last"]
    return entry


def campaign_status(plan: Plan, results) -> dict:
    results = Path(results)
    items = [item_status(results, it) for it in plan.items]
    counts = {s: sum(1 for i in items if i["status"] == s) for s in ("done", "pending", "failed")}
    report = {"plan": plan.name, "results": str(results), **counts, "items": items}
    from hinas.campaign_long import annotate

    annotate(plan, results, report)  # waiting items, search movement, seconds spent and to finish
    return report


def _provenance(plan: Plan, item: Item, cfg=None, device: str = "cpu") -> dict:
    from hinas.engine.common import provenance

    prov = {"plan": plan.name, "item": item.name, "kind": item.kind, **provenance(device),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if cfg is not None:
        prov.update(profile=cfg.profile, seed=cfg.seed, task=cfg.task, scale=cfg.scale,
                    data_root=cfg.data_root, amp_bf16=cfg.amp_bf16, device_data=cfg.device_data)
    return prov


class _Progress:
    """``DIR/<item>/progress.json``: pieces run so far, seconds spent, the last piece's result."""

    def __init__(self, folder: Path):
        self.path = folder / "progress.json"
        self.data = _read_json(self.path, {}) or {}
        self.data.setdefault("pieces", 0)
        self.data.setdefault("seconds", 0.0)
        self.data.setdefault("history", [])

    def piece(self, seconds: float, result: dict) -> None:
        self.data["pieces"] += 1
        self.data["seconds"] = round(self.data["seconds"] + seconds, 3)
        self.data["last"] = result
        self.data["history"].append({"seconds": round(seconds, 3), **result})
        _write_json(self.path, self.data)


# ---------------------------------------------------------------------------------------------
# running items
# ---------------------------------------------------------------------------------------------
class _Context:
    def __init__(self, plan: Plan, results: Path, deadline: float, budget: float, device, data_root, log,
                 settings: dict | None = None):
        self.plan, self.results, self.deadline = plan, results, deadline
        self.device, self.data_root, self.log = device, data_root, log
        self.settings = settings or {}

        self.reserve = min(FINAL_RESERVE, 0.1 * budget)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def stop_at(self) -> float:
        return self.deadline - self.reserve


def _copy_files(src: Path, dst: Path, names) -> list[str]:
    # plain copies, stamped now: the window's archive takes the files written since the call
    # began, and a file the run wrote in an earlier window (config.yaml of a resumed training)
    # must still travel with the finished item (copy2 kept the old time and left it behind)
    copied = []
    if (src.parent / "run.budget.json").exists():  # the time-budget plan (hinas.engine.budget)
        shutil.copyfile(src.parent / "run.budget.json", dst / "budget.json")
        copied.append("budget.json")
    for name in names:
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)
            copied.append(name)
    return copied


def _run_engine(ctx: _Context, item: Item, kind: str, genotype=None) -> dict | None:
    """One piece of a search/train item; the engine's summary when finished, None when paused."""
    from hinas.engine import budget as budget_mod
    from hinas.engine.search import search
    from hinas.engine.train import train

    folder = ctx.results / item.name
    run = folder / "run"
    cfg = _item_config(item, ctx.device, ctx.data_root, ctx.settings)
    progress = _Progress(folder)
    started = time.monotonic()
    for attempt in (1, 2):
        fresh = not run.exists()
        resume = (run / "checkpoint.pt").exists()
        try:
            plan = None
            if item.budget is not None:
                cfg, plan = budget_mod.budgeted(kind, cfg, item.budget, run, resume=resume or fresh, genotype=genotype)
            if kind == "search":
                result = search(cfg, run, resume=resume, progress=False, stop_at=ctx.stop_at())
            else:
                result = train(cfg, genotype, run, resume=resume, progress=False, stop_at=ctx.stop_at())
            break
        except HinasError as exc:
            from hinas.engine.common import TrainingDiverged

            if isinstance(exc, TrainingDiverged) or fresh or attempt == 2:
                raise
            # a half-done run that cannot be carried over: start the item again, from nothing
            ctx.log(f"{item.name}: cannot resume ({exc}); restarting the item")
            shutil.rmtree(run, ignore_errors=True)
            (folder / "run.budget.json").unlink(missing_ok=True)
    seconds = time.monotonic() - started
    paused = result.get("status") == "paused"
    progress.piece(seconds, {"status": "paused" if paused else "finished",
                             **{k: v for k, v in result.items() if k in ("epoch", "iteration", "steps", "step_in_epoch")}})
    if paused:
        return None
    return {"engine": result, "config": cfg, "budget": plan, "progress": progress.data}


def _finish_search(ctx: _Context, item: Item, out: dict) -> dict:
    from hinas.campaign_long import movement_of
    from hinas.supernet import Supernet

    folder, run, cfg = ctx.results / item.name, ctx.results / item.name / "run", out["config"]
    files = _copy_files(run, folder, ["genotype.json", "genotype_final.json", "history.csv", "alpha.csv",
                                      "beta.csv", "config.yaml", "environment.json"])
    engine = out["engine"]
    supernet_weights = sum(p.numel() for p in Supernet(cfg.supernet_config()).weight_parameters())
    return {
        "metrics": {"val_psnr": engine.get("val_psnr"), "val_ssim": engine.get("val_ssim"),
                    "best_epoch": engine.get("best_epoch")},
        "params": {"supernet_weights": supernet_weights},
        "timings": {"search_seconds": engine.get("seconds"), "wall_seconds": out["progress"]["seconds"],
                    "pieces": out["progress"]["pieces"], "steps": engine.get("steps")},
        "schedule": _schedule(cfg, out["budget"], "epochs"),
        "movement": engine.get("movement") or movement_of(folder),  # see hinas.engine.movement
        "engine_summary": engine,
        "files": files,
    }


def _finish_train(ctx: _Context, item: Item, out: dict) -> dict:
    from hinas.evaluation import load_trained
    from hinas.network import count_flops

    folder, run, cfg = ctx.results / item.name, ctx.results / item.name / "run", out["config"]
    files = _copy_files(run, folder, ["network.json", "weights.safetensors", "genotype.json", "history.csv",
                                      "config.yaml", "environment.json"])
    engine = out["engine"]
    model, spec = load_trained(folder, "best", "cpu")
    in_ch = spec.get("in_channels", 1 if spec["task"] == "denoise" else 3)
    return {
        "metrics": {"val_psnr": engine.get("val_psnr"), "val_ssim": engine.get("val_ssim"),
                    "best_iteration": engine.get("best_iteration")},
        "params": engine.get("params"),
        "flops": count_flops(model, (64, 64), in_ch)["flops"],
        "flops_input": [64, 64],
        "model": spec["model"],
        "timings": {"train_seconds": engine.get("seconds"), "iterations_per_second": engine.get("iterations_per_second"),
                    "wall_seconds": out["progress"]["seconds"], "pieces": out["progress"]["pieces"]},
        "schedule": _schedule(cfg, out["budget"], "iterations"),
        "engine_summary": engine,
        "files": files,
    }


def _schedule(cfg, plan, what: str) -> dict:
    from hinas.engine.budget import paper_lengths

    sched = {"profile": cfg.profile, f"planned_{what}": getattr(cfg, what), **paper_lengths(cfg.task, cfg.scale),
             "budgeted": plan is not None}
    sched["share_of_paper"] = sched[f"planned_{what}"] / sched[f"paper_{what}"]
    if what == "epochs":
        sched.update(arch_start_epoch=cfg.arch_start_epoch, val_start_epoch=cfg.val_start_epoch)
    else:
        sched.update(val_every=cfg.val_every, val_after_fraction=cfg.val_after_fraction)
    if plan:
        sched["budget"] = {k: v for k, v in plan.items() if k != "settings"}
    return sched


def _run_bench(ctx: _Context, item: Item) -> dict:
    from hinas.bench import search_speed, supernet_memory

    o = item.options
    device = ctx.device or "cpu"
    t0 = time.monotonic()
    memory = supernet_memory(device=device, batch=o.get("batch", 6), size=o.get("size", 64),
                             layers=o.get("layers", 3), levels=o.get("levels", 3), steps=o.get("steps", 4),
                             f=o.get("f", 10), repeats=o.get("repeats", 2))
    variants = ("fp32", "bf16", "channels_last") if str(device).startswith("cuda") else ("fp32",)
    speed = search_speed(profile=o.get("speed_profile", "paper"), device=device, steps=o.get("speed_steps", 3),
                         variants=variants, data_root=ctx.data_root)
    seconds = time.monotonic() - t0
    _Progress(ctx.results / item.name).piece(seconds, {"status": "finished"})
    return {"metrics": {"memory_ratio": memory["memory_ratio"], "time_ratio": memory["time_ratio"],
                        "analytic_ratio": memory["analytic_ratio"]},
            "supernet_memory": memory, "search_speed": speed, "timings": {"wall_seconds": round(seconds, 3)}}


def _restore_fn(model, device, precision: str, timer: dict):
    import torch

    dev = torch.device(device)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def restore(x):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        with autocast:
            y = model(x)
        y = y.float()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        timer["seconds"] += time.perf_counter() - t0
        return y

    return restore


def _eval_parts(item: Item, task: str, device: str) -> list[dict]:
    o = item.options
    datasets = o.get("datasets") or ["default"]
    parts = []
    for ds in datasets if isinstance(datasets, list) else [datasets]:
        for protocol in o.get("protocols") or ["standard"]:
            for precision in o.get("precisions") or ["fp32"]:
                name = f"{ds}-{protocol}-{precision}"
                parts.append({"part": name, "dataset": ds, "protocol": protocol, "precision": precision,
                              "skipped": precision == "bf16" and not str(device).startswith("cuda")})
    return parts


def _run_eval(ctx: _Context, item: Item):
    """Evaluate the network of ``item.network_from``; each part saved as it finishes."""
    import torch

    from hinas.data.datasets import resolve_data_root
    from hinas.engine.common import device_name
    from hinas.evaluation import PROTOCOLS, evaluate, load_trained
    from hinas.network import count_flops, count_parameters

    folder = ctx.results / item.name
    net_dir = ctx.results / item.network_from
    device = ctx.device or "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise HinasError(f"--device {device} asked for but CUDA is not available; use --device cpu")
    model, spec = load_trained(net_dir, "best", device)
    task = spec["task"]
    sigma = item.options.get("sigma") if task == "denoise" else None
    if task == "denoise" and sigma is None:
        raise HinasError(f"plan item {item.name!r}: denoising evaluation needs 'sigma'")
    default = ("embedded-test" if resolve_data_root(ctx.data_root) is None
               else ("BSDS500-test" if task == "denoise" else "Set5"))
    progress = _Progress(folder)
    evaluations = []
    for part in _eval_parts(item, task, device):
        if part["protocol"] not in PROTOCOLS:
            raise HinasError(f"plan item {item.name!r}: unknown protocol {part['protocol']!r}")
        path = folder / "parts" / f"{part['part']}.json"
        if part["skipped"]:
            continue
        stored = _read_json(path)
        if stored is not None:
            evaluations.append(stored)
            continue
        if ctx.left() < item.estimate + ctx.reserve:
            return None  # out of time: the parts done so far are kept
        t0 = time.monotonic()
        timer = {"seconds": 0.0}
        dataset = default if part["dataset"] == "default" else part["dataset"]
        res = evaluate(_restore_fn(model, device, part["precision"], timer), dataset, task, sigma=sigma,
                       scale=spec.get("scale"), protocol=part["protocol"], device=device,
                       data_root=ctx.data_root, limit=item.options.get("limit"))
        res.update(precision=part["precision"], inference_seconds=timer["seconds"], seconds_total=res["seconds"],
                   device_name=device_name(device), data_root=ctx.data_root)
        _write_json(path, res)
        evaluations.append(res)
        progress.piece(time.monotonic() - t0, {"status": "part", "part": part["part"]})
    in_ch = spec.get("in_channels", 1 if task == "denoise" else 3)
    cpu_model = model.float().cpu()
    return {
        "network": item.network_from,
        "metrics": {f"{e['dataset']}/{e['protocol']}/{e['precision']}": {"psnr": e["psnr"], "ssim": e["ssim"]}
                    for e in evaluations},
        "params": count_parameters(cpu_model),
        "flops": count_flops(cpu_model, (64, 64), in_ch)["flops"],
        "flops_input": [64, 64],
        "timings": {e["part"] if "part" in e else f"{e['dataset']}-{e['protocol']}-{e['precision']}":
                    {"inference_seconds": e["inference_seconds"], "seconds_total": e["seconds_total"]}
                    for e in evaluations},
        "evaluations": evaluations,
    }


def _run_item(ctx: _Context, item: Item) -> str:
    """Run (a piece of) one item; returns 'done', 'paused' or raises."""
    from hinas.genotype import Genotype

    folder = ctx.results / item.name
    folder.mkdir(parents=True, exist_ok=True)
    cfg = None
    if item.kind == "bench":
        body = _run_bench(ctx, item)
    elif item.kind == "eval":
        body = _run_eval(ctx, item)
        if body is None:
            return "paused"
    else:
        genotype = None
        if item.kind == "train" and item.genotype_from:
            genotype = Genotype.load(ctx.results / item.genotype_from / "genotype.json")
        from hinas import campaign_long

        run_piece = campaign_long.run_long if campaign_long.is_long(item) else _run_engine
        out = run_piece(ctx, item, item.kind, genotype)
        if out is None:
            return "paused"
        cfg = out["config"]
        body = (_finish_search if item.kind == "search" else _finish_train)(ctx, item, out)
        body["config"] = cfg.to_dict()
        campaign_long.finish_extras(folder, item, body)
    summary = {"item": item.name, "kind": item.kind, "status": "done", **body,
               "provenance": _provenance(ctx.plan, item, cfg, ctx.device or (cfg.device if cfg else "cpu"))}
    summary["device"] = summary["provenance"]["device"]
    _write_json(folder / "summary.json", summary)
    _write_json(folder / DONE, {"finished": summary["provenance"]["finished"]})  # last: the item is complete
    shutil.rmtree(folder / "run", ignore_errors=True)
    shutil.rmtree(folder / "parts", ignore_errors=True)
    (folder / "run.budget.json").unlink(missing_ok=True)
    return "done"


def run_campaign(plan: Plan, results, budget: float, *, device=None, data_root=None, retry_failed: bool = False,
                 log=None, started: float | None = None, settings: dict | None = None) -> dict:
    """Run the next undone items of ``plan`` into ``results`` within ``budget`` seconds;
    ``settings`` (:func:`parse_settings`) change how every search/train item runs."""
    if budget <= 0:
        raise ConfigError(f"--budget must be a positive number of seconds, got {budget:g}")
    log = log or (lambda msg: print(f"campaign: {msg}", file=sys.stderr, flush=True))
    t0 = started if started is not None else time.monotonic()
    results = Path(results)
    if results.exists() and not results.is_dir():
        raise HinasError(f"--results {results}: exists and is not a folder; give a folder")
    for item in plan.items:  # validate the settings with this call's device/data root before writing
        if item.kind in ("search", "train"):
            _item_config(item, device, data_root, settings)
    results.mkdir(parents=True, exist_ok=True)
    ctx = _Context(plan, results, t0 + budget, budget, device, data_root, log, settings)
    ran, blocked, waiting = [], set(), {}
    from hinas.campaign_long import wait_reason

    for item in plan.items:
        st = item_status(results, item)
        if st["status"] == "done":
            shutil.rmtree(results / item.name / "run", ignore_errors=True)  # left by an older archive
            continue
        reason = wait_reason(plan, results, item, waiting)  # e.g. its search did not move: never run, no error
        if reason:
            waiting[item.name] = reason
            blocked.add(item.name)
            ran.append({"name": item.name, "status": "waiting", "reason": reason})
            log(f"{item.name}: waiting ({reason})")
            continue
        if any(d in blocked or item_status(results, _by_name(plan, d))["status"] != "done" for d in item.depends):
            blocked.add(item.name)
            ran.append({"name": item.name, "status": "blocked", "by": item.depends})
            continue
        if st["status"] == "failed":
            if not retry_failed:
                blocked.add(item.name)
                continue
            (results / item.name / "error.json").unlink()
        if ctx.left() < item.estimate + ctx.reserve:
            # too little time for this one; a later, shorter item may still fit (its dependants wait)
            log(f"{item.name}: {ctx.left():.0f} s left, needs about {item.estimate:.0f} s; skipped in this call")
            blocked.add(item.name)
            continue
        log(f"{item.name} ({item.kind}): starting, {ctx.left():.0f} s left")
        t_item = time.monotonic()
        try:
            outcome = _run_item(ctx, item)
        except (HinasError, RuntimeError, ValueError, OSError) as exc:
            # recorded, and the rest of the plan goes on; the message names what to change
            _write_json(results / item.name / "error.json",
                        {"error": f"{exc.__class__.__name__}: {exc}", "traceback": traceback.format_exc(limit=8)})
            blocked.add(item.name)
            outcome = "failed"
            log(f"{item.name}: failed ({exc.__class__.__name__}: {exc})")
        ran.append({"name": item.name, "status": outcome, "seconds": round(time.monotonic() - t_item, 3)})
        log(f"{item.name}: {outcome} after {time.monotonic() - t_item:.1f} s")
        if outcome == "paused":
            break
    report = campaign_status(plan, results)
    report.update(budget=budget, elapsed=round(time.monotonic() - t0, 3), ran=ran)
    return report


ARCHIVE_PART_BYTES = 15 * 2**20  # the GPU machine returns files of at most 16 MiB (8 files)


def write_archive(results, since: float, target) -> list[str]:
    """tar.gz of every file under ``results`` written at or after ``since`` (wall clock), as
    ``target`` or, when larger than :data:`ARCHIVE_PART_BYTES`, ``target.1``, ``target.2``, ...

    Members are relative to ``results``; ``cat target* | tar xzf - -C DIR`` unpacks them.
    """
    import tarfile

    results, target = Path(results), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in results.rglob("*") if p.is_file() and not p.name.endswith(".tmp")
                   and p.stat().st_mtime >= since)
    tmp = target.with_name(target.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for p in files:
            tar.add(p, arcname=str(p.relative_to(results)))
    size = tmp.stat().st_size
    if size <= ARCHIVE_PART_BYTES:
        os.replace(tmp, target)
        return [str(target)]
    parts = []
    with open(tmp, "rb") as fh:
        n = 1
        while chunk := fh.read(ARCHIVE_PART_BYTES):
            part = target.with_name(f"{target.name}.{n}")
            part.write_bytes(chunk)
            parts.append(str(part))
            n += 1
    tmp.unlink()
    return parts


def _by_name(plan: Plan, name: str) -> Item:
    return next(i for i in plan.items if i.name == name)


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------
def result_rows(results) -> dict[str, list[dict]]:
    """The finished items of a campaign results folder as flat rows, one list per kind: ``search``,
    ``train``, ``eval`` (one row per dataset, protocol and precision, with its network's model,
    size, seed and schedule) and ``bench``. Every row names its item, device, profile and seed."""
    results = Path(results)
    done = {}
    for summary_file in sorted(results.glob("*/summary.json")):
        summary = _read_json(summary_file)
        if isinstance(summary, dict) and (summary_file.parent / DONE).exists():
            done[summary_file.parent.name] = summary
    rows: dict[str, list[dict]] = {"search": [], "train": [], "eval": [], "bench": []}

    def common(s: dict) -> dict:
        prov, cfg = s.get("provenance", {}), s.get("config", {})
        return {"item": s.get("item"), "device": s.get("device"), "profile": prov.get("profile", cfg.get("profile")),
                "seed": prov.get("seed", cfg.get("seed")), "git_revision": prov.get("git_revision"),
                "finished": prov.get("finished")}

    def schedule(s: dict, what: str) -> dict:
        sched = s.get("schedule", {})
        planned, paper = sched.get(f"planned_{what}"), sched.get(f"paper_{what}")
        return {f"{what}": planned, f"paper_{what}": paper,
                "fraction_of_paper": planned / paper if planned and paper else None,
                "budget_seconds": (sched.get("budget") or {}).get("budget_seconds")}

    for name, s in done.items():
        kind, metrics = s.get("kind"), s.get("metrics", {})
        if kind == "search":
            rows["search"].append({**common(s), "task": s.get("config", {}).get("task"), **schedule(s, "epochs"),
                                   "seconds": s.get("timings", {}).get("search_seconds"),
                                   "val_psnr": metrics.get("val_psnr"), "val_ssim": metrics.get("val_ssim"),
                                   **{k: (s.get("movement") or {}).get(k) for k in ("moved", "alpha_max_dev",
                                                                                    "beta_max_change")},
                                   "genotype": str(results / name / "genotype.json")})
        elif kind == "train":
            cfg = s.get("config", {})
            rows["train"].append({**common(s), "model": s.get("model"), "task": cfg.get("task"),
                                  "sigma": (cfg.get("sigma") or [None])[0], "scale": cfg.get("scale"),
                                  "params": s.get("params"), **schedule(s, "iterations"),
                                  "iterations_per_second": s.get("timings", {}).get("iterations_per_second"),
                                  "seconds": s.get("timings", {}).get("train_seconds"),
                                  "val_psnr": metrics.get("val_psnr"), "val_ssim": metrics.get("val_ssim"),
                                  "best_iteration": metrics.get("best_iteration")})
        elif kind == "bench":
            mem, speed = s.get("supernet_memory", {}), s.get("search_speed", {})
            rows["bench"].append({**common(s), **{k: metrics.get(k) for k in ("memory_ratio", "time_ratio",
                                                                                "analytic_ratio")},
                                  **{f"{eq}_{k}": mem.get(eq, {}).get(k) for eq in ("eq5", "eq6")
                                     for k in ("peak_bytes", "step_seconds")},
                                  **{f"search_step_seconds_{v}": d.get("step_seconds")
                                     for v, d in speed.get("variants", {}).items()}})
    for name, s in done.items():
        if s.get("kind") != "eval":
            continue
        net = done.get(s.get("network"), {})
        net_cfg = net.get("config", {})
        for ev in s.get("evaluations", []):
            rows["eval"].append({**common(s), "profile": net_cfg.get("profile"), "seed": net_cfg.get("seed"),
                                 "network": s.get("network"),
                                 "model": net.get("model"), "params": s.get("params"),
                                 "train_iterations": net.get("schedule", {}).get("planned_iterations"),
                                 "paper_iterations": net.get("schedule", {}).get("paper_iterations"),
                                 "train_seconds": net.get("timings", {}).get("train_seconds"),
                                 "best_iteration": net.get("metrics", {}).get("best_iteration"),
                                 **{k: ev.get(k) for k in ("dataset", "task", "sigma", "scale", "protocol",
                                                           "precision", "images", "psnr", "ssim",
                                                           "inference_seconds")}})
    return rows


def verify(results, *, images: int | None = 3, data_root=None) -> dict:
    """Re-evaluate every stored network on the CPU against its stored per-image scores."""
    import torch

    from hinas.evaluation import load_trained
    from hinas.evaluation import evaluate

    results = Path(results)
    if not results.is_dir():
        raise HinasError(f"{results}: no such results folder; give the --results folder of 'hinas campaign run'")
    if images is not None and images < 1:
        raise HinasError(f"--images must be at least 1, got {images}")
    networks: dict[str, dict] = {}
    incomplete = []  # done items whose summary names files the folder lacks (a lossy unpack)
    for summary_file in sorted(results.rglob("summary.json")):
        folder = summary_file.parent
        summary = _read_json(summary_file)
        if not (folder / DONE).exists() or not isinstance(summary, dict):
            continue
        missing = [name for name in summary.get("files", []) if not (folder / name).is_file()]
        if missing:
            incomplete.append({"path": str(folder), "missing": missing})
        if summary.get("kind") != "eval":
            continue
        net_dir = folder.parent / summary["network"]
        entry = networks.setdefault(str(net_dir), {"path": str(net_dir), "device": summary.get("device"),
                                                   "match": True, "max_diff_db": 0.0, "checked": []})
        model, spec = load_trained(net_dir, "best", "cpu")
        for ev in summary.get("evaluations", []):
            stored = ev["per_image"][:images] if images else ev["per_image"]
            root = data_root or os.environ.get("HINAS_DATA") or ev.get("data_root")
            with torch.no_grad():
                res = evaluate(model, ev["dataset"], ev["task"], sigma=ev.get("sigma"), scale=ev.get("scale"),
                               protocol=ev["protocol"], device="cpu", data_root=root, limit=len(stored))
            by_name = {r["name"]: r["psnr"] for r in res["per_image"]}
            diffs = [abs(by_name.get(s["name"], float("inf")) - s["psnr"]) for s in stored]
            worst = max(diffs) if diffs else 0.0
            tol = TOLERANCE_DB.get(ev.get("precision", "fp32"), TOLERANCE_DB["fp32"])
            ok = worst <= tol
            entry["checked"].append({"evaluation": folder.name, "dataset": ev["dataset"], "protocol": ev["protocol"],
                                     "precision": ev.get("precision", "fp32"), "images": len(stored),
                                     "max_diff_db": worst, "tolerance_db": tol, "match": ok})
            entry["max_diff_db"] = max(entry["max_diff_db"], worst)
            entry["match"] = entry["match"] and ok
    nets = list(networks.values())
    return {"results": str(results), "images": images, "tolerance_db": TOLERANCE_DB, "networks": nets,
            "incomplete": incomplete, "match": all(n["match"] for n in nets) and not incomplete}


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def register_cli(subparsers) -> None:
    c = subparsers.add_parser("campaign", help="run a plan of GPU experiments inside a time budget, resumably")
    sub = c.add_subparsers(dest="campaign", metavar="ACTION", required=True)
    r = sub.add_parser("run", help="run the next undone items of a plan, stopping cleanly before the budget")
    _plan_args(r)
    r.add_argument("--budget", type=float, required=True, metavar="SECONDS",
                   help="wall-clock seconds for this call (items stop cleanly before it ends)")
    r.add_argument("--device", default=None, help="cpu or cuda for every item (default: each item's profile)")
    r.add_argument("--data-root", default=None, metavar="DIR", help="datasets folder (default: $HINAS_DATA or embedded)")
    r.add_argument("--retry-failed", action="store_true", help="run again the items that failed in earlier calls")
    r.add_argument("--archive", default=None, metavar="FILE.tgz",
                   help="afterwards, pack every file this call wrote under DIR into FILE.tgz (split into "
                        "FILE.tgz.1, .2, ... above 15 MiB); unpack with: cat FILE.tgz* | tar xzf - -C DIR")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"how every search/train item runs (repeatable): {', '.join(SETTABLE)}; e.g. the "
                        f"levers of `hinas bench gpu-levers REPORT`")
    r.add_argument("--json", action="store_true", help="print the report as one JSON object (the default)")
    r.set_defaults(func=_cli_run)
    s = sub.add_parser("status", help="which items of a plan are done or pending in a results folder")
    _plan_args(s)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_cli_status)
    lp = sub.add_parser("plans", help="list the plans shipped with hinas")
    lp.set_defaults(func=lambda args: print("\n".join(list_plans())) or 0)

    v = subparsers.add_parser("verify", help="re-evaluate stored networks on the CPU against their stored scores")
    v.add_argument("results", metavar="DIR", help="a results folder of 'hinas campaign run'")
    v.add_argument("--images", type=int, default=3, metavar="N", help="first N images of each evaluation (default 3)")
    v.add_argument("--all-images", action="store_true", help="every image (slow for big sets)")
    v.add_argument("--data-root", default=None, metavar="DIR", help="datasets folder (default: $HINAS_DATA)")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(func=_cli_verify)


def _plan_args(p) -> None:
    p.add_argument("--plan", required=True, metavar="NAME|FILE", help="plan name (hinas campaign plans) or YAML file")
    p.add_argument("--results", required=True, metavar="DIR", help="results folder (created; continued if it exists)")


def _cli_run(args) -> int:
    from hinas.cli import print_json

    started, wall = time.monotonic(), time.time()
    plan = load_plan(args.plan)
    settings = parse_settings(args.set)
    if args.archive and Path(args.archive).resolve().is_relative_to(Path(args.results).resolve()):
        raise HinasError(f"--archive {args.archive}: must not be inside --results {args.results}")
    report = None
    try:
        report = run_campaign(plan, args.results, args.budget, device=args.device, data_root=args.data_root,
                              retry_failed=args.retry_failed, started=started, settings=settings)
    finally:  # whatever happened, what was written comes back
        if args.archive and Path(args.results).is_dir():
            parts = write_archive(args.results, wall - 1.0, args.archive)
            if report is not None:
                report["archive"] = parts
    print_json(report)
    return 0


def _cli_status(args) -> int:
    from hinas.cli import print_json

    report = campaign_status(load_plan(args.plan), args.results)
    if args.json:
        print_json(report)
    else:
        from hinas.campaign_long import format_status

        print("\n".join(format_status(report)))
    return 0


def _cli_verify(args) -> int:
    from hinas.cli import print_json

    report = verify(args.results, images=None if args.all_images else args.images, data_root=args.data_root)
    if args.json:
        print_json(report)
    else:
        for n in report["networks"]:
            print(f"{'match' if n['match'] else 'DIFFERS':7s} {n['path']} ({n['device']}): max "
                  f"{n['max_diff_db']:.4f} dB over {len(n['checked'])} evaluations")
        for item in report["incomplete"]:
            print(f"MISSING {item['path']}: {', '.join(item['missing'])} (named in its summary.json; unpack "
                  "every window's archive in order, or run the item again)")
        if not report["networks"]:
            print(f"no evaluated networks under {args.results}")
    return 0 if report["match"] else 1
