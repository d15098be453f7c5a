"""The book's runs, cached: every search and training goes through
:func:`hinas.engine.cached_run` under ``runs_root``, keyed by its configuration, so a second
build of the book reuses finished runs (and resumes interrupted ones); evaluations are cached
as JSON files inside the run folder they score. Baseline rows (BM3D, the noisy input) too.

**RSWS** (random search with weight sharing, Li and Talwalkar 2020; Table 1) as the paper
defines it: ``rsws_n`` uniformly random architectures (cells and width path; no LWAS, no residual
head, as the paper's row) are scored with the shared weights of the supernet trained by that
seed's search of the same space (one-hot alpha/beta, :func:`rsws_weight_sharing`); the best by the
search's criterion (SSIM + PSNR/100 on the held-out set) is trained like every other row.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Optional


from hinas.book.compare import NOISY_INPUT
from hinas.book.settings import base_config, eval_crop, profile_settings
from hinas.engine import RunConfig, cached_run, evaluate_run
from hinas.engine.health import training_health
from hinas.errors import HinasError
from hinas.space.genotype import Genotype, random_genotype
from hinas.eval.metrics import selection_score


def search_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the training-only settings of the ablation budget put back to the main ones,
    so that an ablation reuses the search of the same space (the search never reads them)."""
    s = profile_settings(cfg.profile)
    changed = s.get("ablation_train", {})
    if not changed:
        return cfg
    engine = RunConfig.from_profile(cfg.profile, cfg.task, cfg.scale)
    return cfg.replace(**{k: s["train"].get(k, getattr(engine, k)) for k in changed})


BUSY_WAIT_S = 2.0  # how often a run that another chapter is computing is checked again
BUSY_LIMIT_S = 4 * 3600.0  # a run folder held longer than this is reported, not waited for


def _cached(kind: str, cfg: RunConfig, runs_root, genotype=None) -> dict:
    """:func:`hinas.engine.cached_run`, waiting while another chapter (executed side by side, see
    :mod:`hinas.book.execute`) computes the same run: once it is done, its result is read back."""
    import time

    from hinas.engine.runfolder import RunFolderBusy

    start = time.monotonic()
    while True:
        try:
            return cached_run(kind, cfg, runs_root, genotype=genotype)
        except RunFolderBusy:
            if time.monotonic() - start > BUSY_LIMIT_S:
                raise
            time.sleep(BUSY_WAIT_S)


def run_search(cfg: RunConfig, runs_root) -> dict:
    """Cached search; the summary gains ``run_dir`` and ``genotype`` (the best epoch's). A search
    chapter 4's plan has finished with the same settings is read from its item folder instead of
    run again (chapter 5 is not a plan yet; its tables build on chapter 4's searches)."""
    scfg = search_config(cfg)
    s = _planned_search(scfg, runs_root) or _cached("search", scfg, runs_root)
    s["genotype"] = Genotype.load(Path(s["run_dir"]) / "genotype.json")
    return s


def _planned_search(cfg: RunConfig, runs_root) -> Optional[dict]:
    """The engine summary of chapter 4's finished search item of ``cfg``'s seed, with ``run_dir``
    its item folder, when its manifest checks and its settings are ``cfg``'s (else None). While
    chapter 4 runs its plan (executed side by side, :mod:`hinas.book.execute`), it waits for it."""
    import time

    from hinas.book.plans import plans_root
    from hinas.campaign import check_item, read_json, results_lock
    from hinas.campaign.folders import ResultsBusy

    plan_folder = plans_root(runs_root, cfg.profile, cfg.device, cfg.data_root) / "search"
    folder = plan_folder / f"search-dn-s{cfg.seed}"
    start = time.monotonic()
    while check_item(folder)["state"] != "done" and plan_folder.is_dir():
        try:
            with results_lock(plan_folder):  # free: nobody is running chapter 4's plan
                return None
        except ResultsBusy:
            if time.monotonic() - start > BUSY_LIMIT_S:
                return None
            time.sleep(BUSY_WAIT_S)
    summary = read_json(folder / "summary.json")
    if not isinstance(summary, dict) or check_item(folder)["state"] != "done":
        return None
    try:
        same = RunConfig.from_dict(summary["config"]).key() == cfg.key()
    except (HinasError, KeyError, TypeError):
        return None
    return dict(summary.get("engine_summary") or {}, run_dir=str(folder), device=summary.get("device")) if same else None


def run_train(cfg: RunConfig, genotype: Optional[Genotype], runs_root) -> dict:
    """Cached training of ``genotype`` (None: ``cfg.model``, e.g. DnCNN); the summary gains ``run_dir``."""
    return _cached("train", cfg, runs_root, genotype=genotype)


def test_set(task: str, data_root=None, crop: Optional[int] = None, limit: Optional[int] = None):
    """The test set the book scores on: BSDS500-test / Set5 when ``data_root`` (or $HINAS_DATA) is
    set, else the embedded photos; optionally the first ``limit`` images, central ``crop`` crops."""
    from hinas.data.datasets import load_dataset, resolve_data_root
    from hinas.data.sampling import central_crops

    embedded = resolve_data_root(data_root) is None
    name = "embedded-test" if embedded else ("BSDS500-test" if task == "denoise" else "Set5")
    return central_crops(load_dataset(name, data_root, grey=(task == "denoise")).limit(limit), crop)


def cached_json(folder, prefix: str, key_parts, compute, *, sort_keys: bool = False):
    """The book's one result cache: ``folder/<prefix>-<sha1 of key_parts>.json``, read when it
    holds readable JSON, else ``compute()``'d and written atomically (a build killed mid-write
    leaves no half file to be read back as a result)."""
    from hinas.safeio import atomic_write_text

    key = hashlib.sha1(json.dumps(key_parts, sort_keys=sort_keys).encode()).hexdigest()[:10]
    path = Path(folder) / f"{prefix}-{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or damaged: computed again
        pass
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(value, indent=1, default=str))
    return value


def evaluate_cached(run_dir, *, sigma: Optional[float] = None, scale: Optional[int] = None,
                    protocol: str = "standard", dataset: Optional[str] = None, data_root=None,
                    device: str = "cpu", limit: Optional[int] = None) -> dict:
    """:func:`hinas.engine.evaluate_run`, remembered in ``run_dir/eval-<key>.json``."""
    dname = getattr(dataset, "name", dataset)

    def compute():
        res = evaluate_run(run_dir, dataset, sigma=sigma, scale=scale, protocol=protocol, data_root=data_root,
                           device=device, limit=limit)
        return {k: v for k, v in res.items() if isinstance(v, (int, float, str, bool, type(None), list))}

    return cached_json(run_dir, "eval", [sigma, scale, protocol, dname, str(data_root), limit], compute)


def _row(cfg: RunConfig, train: dict, ev: dict, **extra) -> dict:
    images = ev.get("images") or 1
    row = dict(profile=cfg.profile, device=train.get("device", cfg.device), dataset=ev["dataset"],
               embedded=ev.get("embedded"), seed=cfg.seed, protocol=ev["protocol"], sigma=ev.get("sigma"),
               scale=ev.get("scale"), psnr=ev["psnr"], ssim=ev["ssim"], params=train.get("params", ev.get("params")),
               flops=ev.get("flops"), images=images, seconds_per_image=ev["seconds"] / images,
               train_seconds=train.get("seconds"), train_iterations=train.get("iterations"),
               run=Path(train["run_dir"]).name, source="measured")
    row.update(extra)
    return row


def train_and_score(cfg: RunConfig, genotype: Optional[Genotype], runs_root, *,
                    protocols: Iterable[str] = ("standard",), limit=None, data_root=None, ablation: bool = False,
                    **extra) -> list:
    """Train (cached) and evaluate on the test set at the training sigma; one row per protocol
    (``ablation``: on chapter 5's test crops, :func:`eval_crop`)."""
    tr = run_train(cfg, genotype, runs_root)
    health = training_health(tr["run_dir"])  # a diverged run is named, never scored (compare.run_status)
    extra = dict(extra, training=health["status"], training_evidence=health["evidence"])
    ds = test_set(cfg.task, data_root, eval_crop(cfg.profile, ablation), limit)
    rows = []
    for protocol in protocols:
        if cfg.task == "denoise":
            for sigma in cfg.sigma:
                ev = evaluate_cached(tr["run_dir"], sigma=sigma, protocol=protocol, dataset=ds,
                                     data_root=data_root, device=cfg.device)
                rows.append(_row(cfg, tr, ev, **extra))
        else:
            ev = evaluate_cached(tr["run_dir"], scale=cfg.scale, protocol=protocol, dataset=ds,
                                 data_root=data_root, device=cfg.device)
            rows.append(_row(cfg, tr, ev, **extra))
    return rows


def profile_seeds(profile: str, seed: int = 0) -> list:
    """The seeds of chapters 4-6 at ``profile`` (:data:`SETTINGS` ``seeds``), offset by the book's ``seed``."""
    return [seed + s for s in profile_settings(profile)["seeds"]]


def rsws_cached(cfg: RunConfig, runs_root, *, seed: int = 0, n: Optional[int] = None) -> dict:
    """:func:`rsws_from_search`, remembered under ``runs_root`` by the search run and ``n``:
    ``{genotype, best, samples, scores, search_seconds, ranking_seconds}``."""
    import time

    n = n or profile_settings(cfg.profile)["rsws_n"]
    found = run_search(cfg, runs_root)

    def compute():
        t0 = time.perf_counter()
        res = rsws_from_search(cfg, runs_root, n=n, seed=seed)
        return dict(best=res["best"], samples=n, scores=res["scores"], search_seconds=found["seconds"],
                    ranking_seconds=time.perf_counter() - t0, search_run=Path(found["run_dir"]).name,
                    genotype=res["genotype"].to_dict())

    out = cached_json(runs_root, "rsws", [Path(found["run_dir"]).name, n, seed, cfg.val_protocol], compute)
    return dict(out, genotype=Genotype.from_dict(out["genotype"]))


def rsws_weight_sharing(supernet, val_records, cfg: RunConfig, *, n: int = 30, seed: int = 0,
                        device="cpu") -> dict:
    """Table 1's RSWS as the paper defines it: random search WITH weight sharing. Sample ``n``
    architectures (cells and width path) uniformly, score each on ``val_records`` with the trained
    ``supernet``'s shared weights (one-hot alpha/beta, :meth:`Supernet.fixed_architecture`) under
    ``cfg.val_protocol`` by SSIM + PSNR/100, and keep the best. No sample is trained.

    Returns ``{"genotype": best Genotype, "scores": [{sample, psnr, ssim, score, path}], "best": i}``.
    """
    from hinas.engine.search import validate_network
    from hinas.space.genotype import origin

    c = supernet.cfg
    ops = [p for p in c.primitives if p != "none"]
    scored = []
    for i in range(n):
        g = random_genotype(c.task, layers=c.layers, steps=c.steps, levels=c.levels, scale=c.scale,
                            ops=ops, seed=1000 * seed + i)
        if not c.lwas:  # one cell for every layer
            g = Genotype.from_dict(dict(g.to_dict(), cells=[g.cells[0]] * c.layers, lwas=False))
        with supernet.fixed_architecture(g):
            m = validate_network(supernet, val_records, cfg, device)
        scored.append({"sample": i, "psnr": m["psnr"], "ssim": m["ssim"],
                       "score": selection_score(m["psnr"], m["ssim"]), "path": list(g.path), "genotype": g})
    best = max(range(n), key=lambda i: scored[i]["score"])
    g = scored[best]["genotype"]
    g = Genotype.from_dict(dict(g.to_dict(), provenance=origin(
        source="rsws_weight_sharing", seed=seed, samples=n, sample=best, val_protocol=cfg.val_protocol,
        selection="best SSIM + PSNR/100 on V with the supernet's shared weights")))
    return {"genotype": g, "best": best, "scores": [{k: v for k, v in r.items() if k != "genotype"} for r in scored]}


def rsws_from_search(cfg: RunConfig, runs_root, *, n: Optional[int] = None, seed: int = 0) -> dict:
    """:func:`rsws_weight_sharing` on the supernet the (cached) search of ``cfg`` trained, scored
    on that search's V images; ``n`` defaults to the profile's ``rsws_n`` (30 at ``paper``)."""
    import torch

    from hinas.data import search_split, task_datasets
    from hinas.engine import common
    from hinas.space.supernet import Supernet

    s = run_search(cfg, runs_root)
    device = common.resolve_device(cfg.device)
    net = Supernet(cfg.supernet_config())
    net.load_state_dict(common.load_checkpoint(Path(s["run_dir"]) / "checkpoint.pt")["model"])
    net = net.to(device).eval()
    records = sorted(task_datasets(cfg.task, cfg.data_root)["train"].records, key=lambda r: r.name)
    if cfg.max_images:
        records = records[: cfg.max_images]
    _, _, val = search_split(records, cfg.split_mode, cfg.val_fraction, cfg.seed)
    with torch.no_grad():
        return rsws_weight_sharing(net, val, cfg, n=n or profile_settings(cfg.profile)["rsws_n"], seed=seed, device=device)


def memory_benchmark(profile: str, runs_root, *, device: str = "cpu") -> dict:
    """Eq. 5 vs Eq. 6 peak memory and step time of the supernet (cached JSON under runs_root)."""
    from hinas.bench.measure import supernet_memory

    kw = dict(profile_settings(profile)["memory"])

    def compute():
        with _silence_fds():  # the CPU profiler writes 'USDT ... profiler_start' lines to fd 1/2
            return supernet_memory(device=device, **kw)

    return cached_json(runs_root, f"bench-memory-{profile}", [device, kw], compute, sort_keys=True)


class _silence_fds:
    """Redirect the process's stdout/stderr file descriptors to /dev/null (C-level writes)."""

    def __enter__(self):
        import os
        import sys

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        self._null = os.open(os.devnull, os.O_WRONLY)
        self._saved = [os.dup(1), os.dup(2)]
        os.dup2(self._null, 1)
        os.dup2(self._null, 2)
        return self

    def __exit__(self, *exc):
        import os

        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in (*self._saved, self._null):
            os.close(fd)
        return False


def noisy_input_row(profile: str, sigma: float, protocol: str, runs_root, *, data_root=None,
                    ablation: bool = False) -> dict:
    """The noisy input itself scored as a restoration (identity), under the same protocol and
    test images as the networks: the floor every denoiser must clear (cached under runs_root)."""
    from hinas.eval.evaluation import evaluate

    s = profile_settings(profile)
    dataset = test_set("denoise", data_root, eval_crop(profile, ablation), s["eval_limit"])

    def compute():
        res = evaluate(lambda x: x, dataset, "denoise", sigma=sigma, protocol=protocol, data_root=data_root)
        return dict(profile=profile, device="cpu", dataset=res["dataset"], embedded=res.get("embedded"), seed=None,
                    protocol=protocol, sigma=sigma, scale=None, psnr=res["psnr"], ssim=res["ssim"], params=None,
                    flops=None, images=res.get("images") or 1, seconds_per_image=None, train_seconds=None,
                    train_iterations=None, run=None, source="measured", method=NOISY_INPUT)

    return cached_json(runs_root, "baseline-noisy", [sigma, protocol, s["eval_limit"], dataset.name, str(data_root)],
                       compute)
