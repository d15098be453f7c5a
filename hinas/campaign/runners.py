"""The item runners: one piece of a search, train, bench or eval item in its folder.

Search and training run in ``DIR/<item>/run/`` with the engine's atomic checkpoints; a piece
that meets the deadline checkpoints and pauses (``stop_at``) and the next call resumes it. A
half-done budgeted item that cannot be resumed (damaged checkpoint, changed settings) is
restarted from scratch, never patched (long items: :mod:`hinas.campaign.long`). An evaluation
saves each part (dataset x protocol x precision) in ``parts/`` as it finishes. Each runner
returns the body of the item's summary, or None when paused.
"""

from __future__ import annotations

import errno
import platform
import shutil
import time

from hinas.campaign.folders import Progress, copy_files, read_json, write_json
from hinas.campaign.plan import Item, Plan
from hinas.campaign.options import item_config
from hinas.campaign.rescore import SUPERNET_FILE
from hinas.errors import HinasError


CALL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


def is_call_error(exc: BaseException) -> bool:
    """An error of the call rather than of the item (the data root, the device, a full disk or a
    permission): never recorded as the item's ``error.json``, never a reason to restart it."""
    from hinas.errors import DataError

    if isinstance(exc, DataError):
        return True
    if isinstance(exc, OSError) and exc.errno in CALL_ERRNOS:
        return True
    return isinstance(exc, HinasError) and "CUDA is not available" in str(exc)


def provenance_of(plan: Plan, item: Item, cfg=None, device: str = "cpu") -> dict:
    from hinas.engine.common import provenance

    prov = {"plan": plan.name, "item": item.name, "kind": item.kind, **provenance(device),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if plan.profile is not None:  # a plan with profiles: the scale it was loaded at (a baseline has no config)
        prov.update(plan_profile=plan.profile, plan_seed_offset=plan.seed)
    if cfg is not None:
        prov.update(profile=cfg.profile, seed=cfg.seed, task=cfg.task, scale=cfg.scale,
                    data_root=cfg.data_root, amp_bf16=cfg.amp_bf16, device_data=cfg.device_data)
    return prov


def piece_provenance(cfg) -> dict:
    """Where one piece of a search/train item ran (each entry of its ``progress.json`` history):
    device, host, commit and threads, so that pieces run on different machines stay apart
    (``campaign status`` estimates the rest from this machine's own pieces)."""
    import torch

    from hinas.engine.common import device_name, git_revision

    return {"device": device_name(cfg.device), "host": platform.node(), "git_revision": git_revision(),
            "threads": torch.get_num_threads(),
            "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def run_engine(ctx, item: Item, kind: str, genotype=None) -> dict | None:
    """One piece of a search/train item; the engine's summary when finished, None when paused."""
    from hinas.engine import budget as budget_mod
    from hinas.engine.search import search
    from hinas.engine.train import train

    folder = ctx.results / item.name
    run = folder / "run"
    cfg = item_config(item, ctx.device, ctx.data_root, ctx.settings)
    progress = Progress(folder)
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

            if isinstance(exc, TrainingDiverged) or is_call_error(exc) or fresh or attempt == 2:
                raise
            # a half-done run that cannot be carried over: start the item again, from nothing
            ctx.log(f"{item.name}: cannot resume ({exc}); restarting the item")
            shutil.rmtree(run, ignore_errors=True)
            (folder / "run.budget.json").unlink(missing_ok=True)
    seconds = time.monotonic() - started
    paused = result.get("status") == "paused"
    progress.piece(seconds, {"status": "paused" if paused else "finished",
                             **{k: v for k, v in result.items() if k in ("epoch", "iteration", "steps", "step_in_epoch")},
                             **piece_provenance(cfg)})
    if paused:
        return None
    return {"engine": result, "config": cfg, "budget": plan, "progress": progress.data}


def finish_search(ctx, item: Item, out: dict) -> dict:
    from hinas.campaign.status import movement_of
    from hinas.space.supernet import Supernet

    folder, run, cfg = ctx.results / item.name, ctx.results / item.name / "run", out["config"]
    files = copy_files(run, folder, ["genotype.json", "genotype_final.json", "history.csv", "alpha.csv",
                                      "beta.csv", "config.yaml", "environment.json"])
    files.append(_keep_supernet(run, folder))
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


def _keep_supernet(run, folder) -> str:
    """The searched supernet's weights at the end of the search (alpha and beta included), kept as
    ``supernet.safetensors`` when the run folder goes: what random search with weight sharing
    (Table 1's RSWS) ranks architectures with."""
    from safetensors.torch import save

    from hinas.engine.common import load_checkpoint, write_bytes_durably

    state = load_checkpoint(run / "checkpoint.pt")["model"]
    write_bytes_durably(folder / SUPERNET_FILE, save({k: v.detach().cpu().contiguous() for k, v in state.items()}))
    return SUPERNET_FILE


def run_rsws(ctx, item: Item):
    """Random search with weight sharing (:mod:`hinas.engine.rsws`) with the supernet the search item
    ``supernet_from`` kept, on that search's V images; the best sample's ``genotype.json`` in the
    item folder, for a train item's ``genotype_from``. Returns ``(summary body, the search's config)``."""
    from safetensors.torch import load_file

    from hinas.campaign.options import RSWS_SAMPLES
    from hinas.engine.rsws import rsws_from_supernet

    source = ctx.plan.folder(ctx.results, item.supernet_from)
    weights = source / SUPERNET_FILE
    if not weights.is_file():
        raise HinasError(f"{weights}: missing (the search finished before searches kept their supernet); remove "
                         f"{source} and run the plan again")
    cfg = item_config(ctx.plan.item(item.supernet_from), ctx.device, ctx.data_root, ctx.settings)
    n = item.options.get("samples", RSWS_SAMPLES)
    t0 = time.monotonic()
    res = rsws_from_supernet(cfg, load_file(str(weights)), n=n, device=cfg.device)
    seconds = time.monotonic() - t0
    res["genotype"].save(ctx.results / item.name / "genotype.json")
    Progress(ctx.results / item.name).piece(seconds, {"status": "finished"})
    best = res["scores"][res["best"]]
    return {"supernet_from": item.supernet_from, "samples": n, "best": res["best"], "scores": res["scores"],
            "metrics": {"val_psnr": best["psnr"], "val_ssim": best["ssim"], "score": best["score"]},
            "timings": {"ranking_seconds": seconds, "wall_seconds": seconds}, "files": ["genotype.json"]}, cfg


def finish_train(ctx, item: Item, out: dict) -> dict:
    from hinas.engine.health import training_health
    from hinas.space.network import count_flops
    from hinas.space.network_file import load_trained

    folder, run, cfg = ctx.results / item.name, ctx.results / item.name / "run", out["config"]
    files = copy_files(run, folder, ["network.json", "weights.safetensors", "genotype.json", "history.csv",
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
        # trained or diverged, with the evidence in words: a diverged run is named, never scored
        "health": training_health(run),
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


def run_bench(ctx, item: Item) -> dict:
    from hinas.bench.measure import search_speed, supernet_memory

    o = item.options
    device = ctx.device or "cpu"
    t0 = time.monotonic()
    memory = supernet_memory(device=device, batch=o.get("batch", 6), size=o.get("size", 64),
                             layers=o.get("layers", 3), levels=o.get("levels", 3), steps=o.get("steps", 4),
                             f=o.get("f", 10), repeats=o.get("repeats", 2))
    variants = ("fp32", "bf16", "channels_last") if str(device).startswith("cuda") else ("fp32",)
    steps = o.get("speed_steps", 3)  # 0: the memory benchmark only (chapter 5's Table 8)
    speed = search_speed(profile=o.get("speed_profile", "paper"), device=device, steps=steps,
                         variants=variants, data_root=ctx.data_root) if steps else {}
    seconds = time.monotonic() - t0
    Progress(ctx.results / item.name).piece(seconds, {"status": "finished"})
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
                cpu_bf16 = precision == "bf16" and not str(device).startswith("cuda")
                parts.append({"part": name, "dataset": ds, "protocol": protocol, "precision": precision,
                              "skipped": f"bf16 autocast runs on CUDA only; this call ran on {device}"
                              if cpu_bf16 else None})
    return parts


def _test_set(item: Item, name: str, task: str, data_root):
    """The dataset an eval part scores: ``name`` whole, or its central crops (option ``crop``)."""
    crop = item.options.get("crop")
    if crop is None:
        return name
    from hinas.data.datasets import load_dataset
    from hinas.data.sampling import central_crops

    return central_crops(load_dataset(name, data_root, grey=task == "denoise"), crop)  # named NAME[cropK]


def run_eval(ctx, item: Item):
    """Evaluate the network of ``item.network_from`` (an eval item) or a baseline's restorer (a
    baseline item); each part saved as it finishes."""
    import torch

    from hinas.data.datasets import resolve_data_root
    from hinas.engine.common import device_name
    from hinas.eval.evaluation import PROTOCOLS, baseline_restorer, evaluate
    from hinas.space.network import count_flops, count_parameters
    from hinas.space.network_file import load_trained

    folder = ctx.results / item.name
    device = ctx.device or "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise HinasError(f"--device {device} asked for but CUDA is not available; use --device cpu")
    if item.kind == "baseline":  # no network, no parameters
        model, spec = None, {"task": "denoise", "model": item.options["method"]}
        restorer = baseline_restorer(item.options["method"], float(item.options["sigma"]))
    else:
        model, spec = load_trained(ctx.plan.folder(ctx.results, item.network_from), "best", device)
    task = spec["task"]
    sigma = item.options.get("sigma") if task == "denoise" else None
    if task == "denoise" and sigma is None:
        raise HinasError(f"plan item {item.name!r}: denoising evaluation needs 'sigma'")
    default = ("embedded-test" if resolve_data_root(ctx.data_root) is None
               else ("BSDS500-test" if task == "denoise" else "Set5"))
    progress = Progress(folder)
    evaluations, skipped = [], []
    for part in _eval_parts(item, task, device):
        if part["protocol"] not in PROTOCOLS:
            raise HinasError(f"plan item {item.name!r}: unknown protocol {part['protocol']!r}")
        path = folder / "parts" / f"{part['part']}.json"
        if part["skipped"]:  # missing, with the reason, rather than silently absent from the summary
            skipped.append({"part": part["part"], "reason": part["skipped"]})
            continue
        stored = read_json(path)
        if stored is not None:
            evaluations.append(stored)
            continue
        if ctx.left() < item.estimate + ctx.reserve:
            return None  # out of time: the parts done so far are kept
        t0 = time.monotonic()
        timer = {"seconds": 0.0}
        dataset = _test_set(item, default if part["dataset"] == "default" else part["dataset"], task, ctx.data_root)
        fn = restorer if model is None else _restore_fn(model, device, part["precision"], timer)
        res = evaluate(fn, dataset, task, sigma=sigma, scale=spec.get("scale"), protocol=part["protocol"],
                       device=device, data_root=ctx.data_root, limit=item.options.get("limit"))
        if model is None:
            timer["seconds"] = res["seconds"]
        res.update(precision=part["precision"], inference_seconds=timer["seconds"], seconds_total=res["seconds"],
                   device_name=device_name(device), data_root=ctx.data_root)
        write_json(path, res)
        evaluations.append(res)
        progress.piece(time.monotonic() - t0, {"status": "part", "part": part["part"]})
    body = {
        "metrics": {f"{e['dataset']}/{e['protocol']}/{e['precision']}": {"psnr": e["psnr"], "ssim": e["ssim"]}
                    for e in evaluations},
        "timings": {e["part"] if "part" in e else f"{e['dataset']}-{e['protocol']}-{e['precision']}":
                    {"inference_seconds": e["inference_seconds"], "seconds_total": e["seconds_total"]}
                    for e in evaluations},
        "evaluations": evaluations,
        **({"skipped": skipped} if skipped else {}),
    }
    if model is None:
        return {"method": spec["model"], "params": None, **body}
    in_ch = spec.get("in_channels", 1 if task == "denoise" else 3)
    cpu_model = model.float().cpu()
    return {"network": item.network_from, "params": count_parameters(cpu_model),
            "flops": count_flops(cpu_model, (64, 64), in_ch)["flops"], "flops_input": [64, 64], **body}
