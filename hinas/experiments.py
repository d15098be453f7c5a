"""The paper's experiments (Tables 1, 3, 4, 6, 8, 10; Fig. 14) as small cached functions.

The book's chapters 4-6 call these. Every search and every training goes through
:func:`hinas.engine.cached_run` under ``runs_root``, keyed by its configuration, so a second
build of the book reuses finished runs (and resumes interrupted ones); evaluations are cached
as JSON files inside the run folder they score.

Each function returns a tidy :class:`pandas.DataFrame` with one row per (setting, seed,
protocol, ...) and the columns ``profile``, ``device``, ``dataset``, ``seed``, ``protocol``,
``sigma``, ``psnr``, ``ssim``, ``params`` and ``source`` (``measured`` here; ``published``
rows come from :mod:`hinas.published` via :func:`published`).

**Scaling.** The experiments run at the engine's profiles (``smoke``, ``quick``, ``gpu``,
``paper``) with the overrides in :data:`SETTINGS`, chosen so the whole book fits its time
budget on 2 CPU cores (about 3 minutes at ``smoke``, under 20 at ``quick``). At ``quick``:
the search runs 6 epochs with the architecture learning rate raised to 0.03 (the paper's
1e-3 over its ~100x more architecture steps; with 1e-3 alpha stays within 0.0005 of uniform
and the decoding is a coin toss); chapters 4 and 6 train each derived network for 700
iterations; chapter 5's ablations train every row of a table with the same shorter budget
(``ablation_train``) and reuse chapter 4's searches (:func:`search_config`); DnCNN is trained
for the first seed only. ``gpu`` and ``paper`` use the engine's profiles unchanged.

**RSWS** (random search with weight sharing, Li and Talwalkar 2020; Table 1) as the paper
defines it: ``rsws_n`` uniformly random architectures (cells and width path; no LWAS, no residual
head, as the paper's row) are scored with the shared weights of the supernet trained by that
seed's search of the same space (one-hot alpha/beta, :func:`rsws_weight_sharing`); the best by the
search's criterion (SSIM + PSNR/100 on the held-out set) is trained like every other row.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import warnings
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from hinas.engine import RunConfig, cached_run, evaluate_run
from hinas.errors import HinasError
from hinas.genotype import Genotype, modify_genotype, random_genotype

PROTOCOLS = ("standard", "hinas-reference")

# Per-profile experiment sizes. ``search``/``train``: RunConfig overrides (documented above);
# ``seeds``: seeds of chapter 4's search, of Table 1 and of chapter 6; ``minor_seeds``: how
# many of them Tables 3, 4, 6 and 8 use (1 at quick, to fit the 20-minute book); ``eval_limit``: test images
# scored per evaluation (None = all); ``eval_crop``: score central crops of this size (None =
# whole images; a CPU budget measure, so the dataset is then named e.g. 'embedded-test[crop128]');
# ``ablation_eval_crop``: the crop for chapter 5's many ablation networks (default: ``eval_crop``;
# at quick, chapters 4 and 6 score whole images and the ablations central 128-px crops);
# ``bm3d_limit``: test images for the (slow) BM3D baseline; ``bm3d_protocols``: the protocols it is
# scored under (default: both); ``rsws_n``: Table 1's random architectures ranked by shared weights;
# ``memory``: the Eq. 5 vs Eq. 6 memory benchmark's supernet (hinas.bench.supernet_memory).
SETTINGS = {
    "smoke": dict(seeds=[0], minor_seeds=1, search={}, train={}, eval_limit=1, eval_crop=48, bm3d_limit=1, rsws_n=2,
                  rn_edges=2, memory=dict(batch=1, size=16, layers=2, levels=3, steps=2, f=2, repeats=1)),
    "quick": dict(seeds=[0, 1], minor_seeds=1, dncnn_seeds=1,
                  search=dict(epochs=6, arch_start_epoch=2, val_start_epoch=3),
                  train=dict(iterations=700, val_every=50),
                  # the ablations' 150 iterations of 8 32x32 patches floor SSIM: with the released
                  # gradient at SSIM <= 0 (and 100 iterations), 9 of 10 orderings compared networks
                  # that never beat the noisy input (measured); chapter 5 says so
                  ablation_train=dict(iterations=150, val_every=25, nonpositive_ssim="clamp"), eval_limit=None, eval_crop=None,
                  ablation_eval_crop=128,
                  # BM3D under hinas-reference denoises every overlapping 64x64 patch separately
                  # (88 s for the 3 test photos against 14 s whole): standard protocol only here
                  bm3d_limit=None, bm3d_protocols=("standard",),
                  rsws_n=10, rn_edges=2,
                  memory=dict(batch=2, size=32, layers=3, levels=3, steps=3, f=4, repeats=2)),
    "gpu": dict(seeds=[0, 1, 2], minor_seeds=3, search={}, train={}, eval_limit=None, eval_crop=None, bm3d_limit=None, rsws_n=10,
                rn_edges=2, memory=dict(batch=6, size=64, layers=3, levels=3, steps=4, f=10)),
    "paper": dict(seeds=[0, 1, 2], minor_seeds=3, search={}, train={}, eval_limit=None, eval_crop=None, bm3d_limit=None, rsws_n=30,
                  rn_edges=2, memory=dict(batch=6, size=64, layers=3, levels=3, steps=4, f=10)),
}


def eval_crop(profile: str, ablation: bool = False) -> Optional[int]:
    """The central crop test images are scored on (None: whole images); ``ablation``: chapter 5's."""
    s = settings(profile)
    return s.get("ablation_eval_crop", s["eval_crop"]) if ablation else s["eval_crop"]


def settings(profile: str) -> dict:
    if profile not in SETTINGS:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(SETTINGS)}")
    return SETTINGS[profile]


def base_config(profile: str, task: str = "denoise", *, seed: int = 0, device: str = "cpu",
                data_root: Optional[str] = None, scale: Optional[int] = None, ablation: bool = False,
                **overrides) -> RunConfig:
    """The book's configuration: the engine profile plus :data:`SETTINGS` overrides.

    ``ablation=True`` adds the profile's ``ablation_train`` overrides (chapter 5's shorter
    training budget, the same for every row of a table, so the rows stay comparable)."""
    s = settings(profile)
    values = dict(s["search"], **s["train"])
    if ablation:
        values.update(s.get("ablation_train", {}))
    values.update(overrides)
    return RunConfig.from_profile(profile, task, scale, seed=seed, device=device, data_root=data_root,
                                  quiet=True, **values)


# ------------------------------------------------------------------------------ runs

def search_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the training-only settings of the ablation budget put back to the main ones,
    so that an ablation reuses the search of the same space (the search never reads them)."""
    s = settings(cfg.profile)
    changed = s.get("ablation_train", {})
    if not changed:
        return cfg
    engine = RunConfig.from_profile(cfg.profile, cfg.task, cfg.scale)
    return cfg.replace(**{k: s["train"].get(k, getattr(engine, k)) for k in changed})


def run_search(cfg: RunConfig, runs_root) -> dict:
    """Cached search; the summary gains ``run_dir`` and ``genotype`` (the best epoch's)."""
    s = cached_run("search", search_config(cfg), runs_root)
    s["genotype"] = Genotype.load(Path(s["run_dir"]) / "genotype.json")
    return s


def run_train(cfg: RunConfig, genotype: Optional[Genotype], runs_root) -> dict:
    return cached_run("train", cfg, runs_root, genotype=genotype)


def test_set(task: str, data_root=None, crop: Optional[int] = None, limit: Optional[int] = None):
    """The test set the book scores on: BSDS500-test / Set5 when ``data_root`` (or $HINAS_DATA) is
    set, else the embedded photos; optionally the first ``limit`` images, central ``crop`` crops."""
    from hinas.data.datasets import ImageDataset, load_dataset, resolve_data_root
    from hinas.engine.search import _crop_center

    embedded = resolve_data_root(data_root) is None
    name = "embedded-test" if embedded else ("BSDS500-test" if task == "denoise" else "Set5")
    ds = load_dataset(name, data_root, grey=(task == "denoise")).limit(limit)
    if crop is None:
        return ds
    return ImageDataset(f"{name}[crop{crop}]", [_crop_center(r, crop) for r in ds.records], grey=ds.grey,
                        embedded=ds.embedded, allows_grey=ds.allows_grey)


def evaluate_cached(run_dir, *, sigma: Optional[float] = None, scale: Optional[int] = None,
                    protocol: str = "standard", dataset: Optional[str] = None, data_root=None,
                    device: str = "cpu", limit: Optional[int] = None) -> dict:
    """:func:`hinas.engine.evaluate_run`, remembered in ``run_dir/eval-<key>.json``."""
    dname = getattr(dataset, "name", dataset)
    key = hashlib.sha1(json.dumps([sigma, scale, protocol, dname, str(data_root), limit]).encode()).hexdigest()[:10]
    path = Path(run_dir) / f"eval-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    res = evaluate_run(run_dir, dataset, sigma=sigma, scale=scale, protocol=protocol, data_root=data_root,
                       device=device, limit=limit)
    res = {k: v for k, v in res.items() if isinstance(v, (int, float, str, bool, type(None), list))}
    path.write_text(json.dumps(res, indent=1))
    return res


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


def searches(profile: str, seeds, runs_root, *, device="cpu", data_root=None, task="denoise", **overrides) -> dict:
    """One search per seed: ``{seed: summary with 'genotype' and 'run_dir'}``."""
    return {s: run_search(base_config(profile, task, seed=s, device=device, data_root=data_root, **overrides),
                          runs_root) for s in seeds}


# ------------------------------------------------------------------------------ tables

def table1(profile: str, seeds, runs_root, *, device="cpu", data_root=None, protocols=("standard",)) -> pd.DataFrame:
    """Table 1: LWAS x ResL (four searches, each trained) and RSWS, for denoising."""
    s = settings(profile)
    rows = []
    for seed in seeds:
        for lwas in (False, True):
            for residual in (False, True):
                cfg = base_config(profile, seed=seed, device=device, data_root=data_root, ablation=True, lwas=lwas, residual=residual)
                found = run_search(cfg, runs_root)
                rows += train_and_score(cfg, found["genotype"], runs_root, ablation=True, protocols=protocols,
                                        limit=s["eval_limit"], data_root=data_root, method="HiNAS",
                                        lwas=lwas, residual=residual, search_seconds=found["seconds"])
        rows += rsws(profile, seed, runs_root, device=device, data_root=data_root, protocols=protocols)
    return pd.DataFrame(rows)


def rsws(profile: str, seed: int, runs_root, *, device="cpu", data_root=None, protocols=("standard",)) -> list:
    """Table 1's RSWS row for one seed: :func:`rsws_from_search` on the supernet of this seed's
    search without LWAS and residual head (cached as ``rsws-<key>.json`` under ``runs_root``), the
    best sample trained with the same budget as the other rows. ``search_seconds`` = that search
    plus the ranking."""
    s = settings(profile)
    cfg = base_config(profile, seed=seed, device=device, data_root=data_root, ablation=True, lwas=False, residual=False)
    ranked = rsws_cached(cfg, runs_root, seed=seed)
    return train_and_score(cfg, ranked["genotype"], runs_root, ablation=True, protocols=protocols, limit=s["eval_limit"],
                           data_root=data_root, method=f"RSWS (N={ranked['samples']})", lwas=False, residual=False,
                           search_seconds=ranked["search_seconds"] + ranked["ranking_seconds"], rsws_best=ranked["best"])


def rsws_cached(cfg: RunConfig, runs_root, *, seed: int = 0, n: Optional[int] = None) -> dict:
    """:func:`rsws_from_search`, remembered under ``runs_root`` by the search run and ``n``:
    ``{genotype, best, samples, scores, search_seconds, ranking_seconds}``."""
    import time

    n = n or settings(cfg.profile)["rsws_n"]
    found = run_search(cfg, runs_root)
    key = hashlib.sha1(json.dumps([Path(found["run_dir"]).name, n, seed, cfg.val_protocol]).encode()).hexdigest()[:10]
    path = Path(runs_root) / f"rsws-{key}.json"
    if path.exists():
        cached = json.loads(path.read_text())
        return dict(cached, genotype=Genotype.from_dict(cached["genotype"]))
    t0 = time.perf_counter()
    res = rsws_from_search(cfg, runs_root, n=n, seed=seed)
    out = dict(best=res["best"], samples=n, scores=res["scores"], search_seconds=found["seconds"],
               ranking_seconds=time.perf_counter() - t0, search_run=Path(found["run_dir"]).name)
    path.write_text(json.dumps(dict(out, genotype=res["genotype"].to_dict()), indent=1))
    return dict(out, genotype=res["genotype"])


def rsws_weight_sharing(supernet, val_records, cfg: RunConfig, *, n: int = 30, seed: int = 0,
                        device="cpu") -> dict:
    """Table 1's RSWS as the paper defines it: random search WITH weight sharing. Sample ``n``
    architectures (cells and width path) uniformly, score each on ``val_records`` with the trained
    ``supernet``'s shared weights (one-hot alpha/beta, :meth:`Supernet.fixed_architecture`) under
    ``cfg.val_protocol`` by SSIM + PSNR/100, and keep the best. No sample is trained.

    Returns ``{"genotype": best Genotype, "scores": [{sample, psnr, ssim, score, path}], "best": i}``.
    """
    from hinas.engine.search import validate_network
    from hinas.genotype import provenance

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
        scored.append({"sample": i, "psnr": m["psnr"], "ssim": m["ssim"], "score": m["ssim"] + m["psnr"] / 100,
                       "path": list(g.path), "genotype": g})
    best = max(range(n), key=lambda i: scored[i]["score"])
    g = scored[best]["genotype"]
    g = Genotype.from_dict(dict(g.to_dict(), provenance=provenance(
        source="rsws_weight_sharing", seed=seed, samples=n, sample=best, val_protocol=cfg.val_protocol,
        selection="best SSIM + PSNR/100 on V with the supernet's shared weights")))
    return {"genotype": g, "best": best, "scores": [{k: v for k, v in r.items() if k != "genotype"} for r in scored]}


def rsws_from_search(cfg: RunConfig, runs_root, *, n: Optional[int] = None, seed: int = 0) -> dict:
    """:func:`rsws_weight_sharing` on the supernet the (cached) search of ``cfg`` trained, scored
    on that search's V images; ``n`` defaults to the profile's ``rsws_n`` (30 at ``paper``)."""
    import torch

    from hinas.data import search_split, task_datasets
    from hinas.engine import common
    from hinas.supernet import Supernet

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
        return rsws_weight_sharing(net, val, cfg, n=n or settings(cfg.profile)["rsws_n"], seed=seed, device=device)


def table3(profile: str, seeds, runs_root, *, device="cpu", data_root=None, protocols=("standard",)) -> pd.DataFrame:
    """Table 3: the searched widths vs fixed widths on the same cells.

    The paper's HiNAS-w40 ([40,40,40]) and HiNAS-wm ([20,40,80]) are for f = 20; they are scaled
    by net_f / 20 so that the comparison keeps its meaning at smaller profiles.
    """
    s = settings(profile)
    rows = []
    for seed in seeds:
        cfg = base_config(profile, seed=seed, device=device, data_root=data_root, ablation=True)
        g = run_search(cfg, runs_root)["genotype"]
        f = cfg.net_f or 20
        k = f / 20
        for name, channels in (("HiNAS-ws", None), ("HiNAS-w40", [round(40 * k)] * g.layers),
                               ("HiNAS-wm", [round(c * k) for c in (20, 40, 80)][: g.layers])):
            rows += train_and_score(cfg.replace(node_channels=channels), g, runs_root, ablation=True, protocols=protocols,
                                    limit=s["eval_limit"], data_root=data_root, method=name,
                                    node_channels=str(channels or "searched"))
    return pd.DataFrame(rows)


def table4(profile: str, seeds, runs_root, *, device="cpu", data_root=None, protocols=("standard",)) -> pd.DataFrame:
    """Table 4: training loss MSE only (train_ssim_weight 0) vs MSE + lssim (default 0.6)."""
    s = settings(profile)
    rows = []
    for seed in seeds:
        cfg = base_config(profile, seed=seed, device=device, data_root=data_root, ablation=True)
        g = run_search(cfg, runs_root)["genotype"]
        for name, w in (("HiNAS* (MSE)", 0.0), ("HiNAS** (MSE + lssim)", None)):
            rows += train_and_score(cfg.replace(train_ssim_weight=w), g, runs_root, ablation=True, protocols=protocols,
                                    limit=s["eval_limit"], data_root=data_root, method=name,
                                    ssim_weight=0.6 if w is None else w)
    return pd.DataFrame(rows)


def table6(profile: str, seeds, runs_root, *, device="cpu", data_root=None, protocols=("standard",)) -> pd.DataFrame:
    """Table 6: the searched cells vs R1 (ops replaced) and R2 (connections changed)."""
    s = settings(profile)
    rows = []
    for seed in seeds:
        cfg = base_config(profile, seed=seed, device=device, data_root=data_root, ablation=True)
        g = run_search(cfg, runs_root)["genotype"]
        variants = {"HiNAS": g}
        for kind in ("R1", "R2"):
            variants[f"HiNAS, {kind}"] = modify_genotype(g, kind, s["rn_edges"], seed=seed)
        for name, gv in variants.items():
            rows += train_and_score(cfg, gv, runs_root, ablation=True, protocols=protocols, limit=s["eval_limit"],
                                    data_root=data_root, method=name)
    return pd.DataFrame(rows)


def table8(profile: str, seeds, runs_root, *, device="cpu", data_root=None, protocols=("standard",),
           train: bool = False) -> pd.DataFrame:
    """Table 8: Eq. 5 (cell sharing) vs Eq. 6 (no sharing): search time (from summary.json), and
    optionally the trained networks' scores. Memory: :func:`memory_benchmark`."""
    s = settings(profile)
    rows = []
    for seed in seeds:
        for mode in ("eq5", "eq6"):
            cfg = base_config(profile, seed=seed, device=device, data_root=data_root, ablation=True, cell_sharing=mode)
            found = run_search(cfg, runs_root)
            base = dict(profile=profile, device=found["device"], seed=seed, cell_sharing=mode,
                        search_seconds=found["seconds"], search_steps=found["steps"],
                        val_psnr=found["val_psnr"], val_ssim=found["val_ssim"], source="measured",
                        run=Path(found["run_dir"]).name)
            if train:
                for r in train_and_score(cfg, found["genotype"], runs_root, ablation=True, protocols=protocols,
                                         limit=s["eval_limit"], data_root=data_root):
                    rows.append(dict(r, **base))
            else:
                rows.append(dict(base, dataset="search-V", protocol="standard"))
    return pd.DataFrame(rows)


def memory_benchmark(profile: str, runs_root, *, device: str = "cpu") -> dict:
    """Eq. 5 vs Eq. 6 peak memory and step time of the supernet (cached JSON under runs_root)."""
    from hinas.bench import supernet_memory

    kw = dict(settings(profile)["memory"])
    key = hashlib.sha1(json.dumps([device, kw], sort_keys=True).encode()).hexdigest()[:10]
    path = Path(runs_root) / f"bench-memory-{profile}-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    with _silence_fds():  # the CPU profiler writes 'USDT ... profiler_start' lines to fd 1/2
        res = supernet_memory(device=device, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1, default=str))
    return res


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


def sota(profile: str, seeds, runs_root, *, device="cpu", data_root=None, protocols=PROTOCOLS,
         bm3d: bool = True) -> pd.DataFrame:
    """Table 10 / Fig. 14 (denoising): our HiNAS networks (one per seed), DnCNN trained with the
    same budget, BM3D on ``bm3d_limit`` test images (under ``bm3d_protocols``) and the noisy
    input itself (the floor); params, time per image, both protocols."""
    s = settings(profile)
    rows = []
    for k, seed in enumerate(seeds):
        cfg = base_config(profile, seed=seed, device=device, data_root=data_root)
        g = run_search(cfg, runs_root)["genotype"]
        rows += train_and_score(cfg, g, runs_root, protocols=protocols, limit=s["eval_limit"], data_root=data_root,
                                method="HiNAS (ours)")
        if k < s.get("dncnn_seeds", len(seeds)):
            rows += train_and_score(cfg.replace(model="dncnn"), None, runs_root, protocols=protocols,
                                    limit=s["eval_limit"], data_root=data_root, method="DnCNN (same budget)")
    cfg = base_config(profile, seed=seeds[0], device=device, data_root=data_root)
    for protocol in protocols:
        for sigma in cfg.sigma:
            if bm3d and protocol in s.get("bm3d_protocols", PROTOCOLS):
                try:
                    rows.append(bm3d_row(profile, sigma, protocol, runs_root, data_root=data_root))
                except HinasError as exc:  # the optional bm3d package is absent: no BM3D row
                    warnings.warn(str(exc))
                    bm3d = False
            rows.append(noisy_input_row(profile, sigma, protocol, runs_root, data_root=data_root))
    return pd.DataFrame(rows)


def bm3d_row(profile: str, sigma: float, protocol: str, runs_root, *, data_root=None) -> dict:
    """BM3D on the first ``bm3d_limit`` test images (cached JSON under runs_root)."""
    import time

    from hinas.evaluation import bm3d_restore, evaluate

    limit = settings(profile)["bm3d_limit"]
    dataset = test_set("denoise", data_root, eval_crop(profile), limit)
    key = hashlib.sha1(json.dumps([sigma, protocol, limit, dataset.name, str(data_root)]).encode()).hexdigest()[:10]
    path = Path(runs_root) / f"baseline-bm3d-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    fn = bm3d_restore(sigma)
    t0 = time.perf_counter()
    res = evaluate(fn, dataset, "denoise", sigma=sigma, protocol=protocol, data_root=data_root, limit=limit)
    seconds = time.perf_counter() - t0
    images = res.get("images") or 1
    row = dict(profile=profile, device="cpu", dataset=res["dataset"], embedded=res.get("embedded"), seed=None,
               protocol=protocol, sigma=sigma, scale=None, psnr=res["psnr"], ssim=res["ssim"], params=None,
               flops=None, images=images, seconds_per_image=seconds / images, train_seconds=None,
               train_iterations=None, run=None, source="measured", method="BM3D")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=1))
    return row


# ------------------------------------------------------------------------------ summaries

def mean_std(df: pd.DataFrame, by, cols=("psnr", "ssim")) -> pd.DataFrame:
    """Mean and standard deviation over seeds (std is NaN for one seed) with the seed count."""
    by = [b for b in ([by] if isinstance(by, str) else list(by)) if b in df.columns]
    agg = {}
    for c in cols:
        if c in df.columns:
            agg[f"{c}_mean"] = (c, "mean")
            agg[f"{c}_std"] = (c, "std")
    agg["seeds"] = ("seed", "nunique") if "seed" in df.columns else (cols[0], "size")
    return df.groupby(by, dropna=False, sort=False).agg(**agg).reset_index()


def fmt_mean_std(mean, std, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def published(table: str) -> pd.DataFrame:
    """A published table of the paper as a tidy DataFrame (``source='published'``)."""
    from hinas.published import flat_rows

    return pd.DataFrame(flat_rows(table))


def ours_vs_published(ours: pd.DataFrame, pub: Optional[pd.DataFrame], keys, *, sigma=None,
                      protocol: str = "standard") -> pd.DataFrame:
    """One row per setting: our mean ± std over seeds beside the paper's number for the same
    setting at the same noise level.

    The published columns are added only when the paper reports ``sigma`` (default: our test
    sigma) for this table; otherwise the table has ours only and the caller shows the published
    numbers separately, so no row mixes noise levels. Provenance (profile, device, dataset,
    protocol, sigma) is constant over the rows and belongs in the caption, not in columns.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    o = ours[ours.protocol == protocol] if "protocol" in ours.columns else ours
    m = mean_std(o, keys)
    out = pd.DataFrame({k: m[k] for k in keys})
    ours_sigma = float(o.sigma.dropna().iloc[0]) if "sigma" in o.columns and o.sigma.notna().any() else None
    sigma = ours_sigma if sigma is None else sigma
    out["PSNR (ours)"] = [fmt_mean_std(a, b, 2) for a, b in zip(m.psnr_mean, m.psnr_std)]
    out["SSIM (ours)"] = [fmt_mean_std(a, b, 4) for a, b in zip(m.ssim_mean, m.ssim_std)]
    out["seeds"] = [int(v) if _finite(v) and (not isinstance(r, str) or r != NOISY_INPUT) else "–"
                    for v, r in zip(m.seeds, m[keys[0]])]
    if pub is not None and len(pub) and (ours_sigma is None or sigma == ours_sigma):
        p = pub if sigma is None or "sigma" not in pub.columns else pub[pub.sigma == sigma]
        if len(p):
            pk = [k for k in keys if k in p.columns]
            p = p.drop_duplicates(pk).copy()
            p["PSNR (paper)"] = [fmt_mean_std(a, b, 2) for a, b in
                                 zip(p.psnr, p.psnr_std if "psnr_std" in p.columns else [None] * len(p))]
            p["SSIM (paper)"] = [fmt_mean_std(a, b, 4) for a, b in
                                 zip(p.ssim, p.ssim_std if "ssim_std" in p.columns else [None] * len(p))]
            out = out.merge(p[pk + ["PSNR (paper)", "SSIM (paper)"]], on=pk, how="left")
    return tidy_table(out)


# ------------------------------------------------------------------------------ honest reading

NOISY_INPUT = "noisy input (no restoration)"

# The rule the book uses to call a difference: it is a win only when it exceeds the seed spread.
ONE_SEED_MARGIN_DB = 0.5  # used only where no seed spread has been measured at all
TIE_RULE = ("a difference is called a tie when it is not larger than the seed spread: the larger "
            "standard deviation over seeds of the two rows, or, where the rows have a single seed, the "
            "spread over seeds of the same profile's full HiNAS run, or "
            f"{ONE_SEED_MARGIN_DB} dB where no spread was measured; a row that does not clear the noisy "
            "input by that margin has not learned, and comparisons with it cannot tell anything")


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(float(x))


def compare(a_mean, a_std, b_mean, b_std, spread=None) -> str:
    """``'ahead'``, ``'behind'`` or ``'tie'``: a against b, by :data:`TIE_RULE`.

    The margin is the larger finite standard deviation of the two rows; ``spread`` (the seed
    spread of a comparable run) stands in where neither row has one, and
    :data:`ONE_SEED_MARGIN_DB` where no spread is known at all.
    """
    if not (_finite(a_mean) and _finite(b_mean)):
        return "tie"
    stds = [float(s) for s in (a_std, b_std) if _finite(s)]
    margin = max(stds) if stds else (float(spread) if _finite(spread) else ONE_SEED_MARGIN_DB)
    diff = float(a_mean) - float(b_mean)
    if abs(diff) <= margin:
        return "tie"
    return "ahead" if diff > 0 else "behind"


def seed_spread(df: pd.DataFrame, col: str = "psnr") -> float:
    """Standard deviation over seeds of ``col`` (NaN with fewer than two seeds)."""
    if "seed" not in df.columns or df.seed.nunique() < 2:
        return float("nan")
    return float(df.groupby("seed")[col].mean().std())


def noisy_input_row(profile: str, sigma: float, protocol: str, runs_root, *, data_root=None,
                    ablation: bool = False) -> dict:
    """The noisy input itself scored as a restoration (identity), under the same protocol and
    test images as the networks: the floor every denoiser must clear (cached under runs_root)."""
    from hinas.evaluation import evaluate

    s = settings(profile)
    dataset = test_set("denoise", data_root, eval_crop(profile, ablation), s["eval_limit"])
    key = hashlib.sha1(json.dumps([sigma, protocol, s["eval_limit"], dataset.name, str(data_root)]).encode()).hexdigest()[:10]
    path = Path(runs_root) / f"baseline-noisy-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    res = evaluate(lambda x: x, dataset, "denoise", sigma=sigma, protocol=protocol, data_root=data_root)
    images = res.get("images") or 1
    row = dict(profile=profile, device="cpu", dataset=res["dataset"], embedded=res.get("embedded"), seed=None,
               protocol=protocol, sigma=sigma, scale=None, psnr=res["psnr"], ssim=res["ssim"], params=None,
               flops=None, images=images, seconds_per_image=None, train_seconds=None, train_iterations=None,
               run=None, source="measured", method=NOISY_INPUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=1))
    return row


def with_noisy_input(df: pd.DataFrame, profile: str, runs_root, *, data_root=None,
                     ablation: bool = False) -> pd.DataFrame:
    """``df`` plus one noisy-input row per (protocol, sigma) it contains, on the same test images
    (``ablation``: chapter 5's crops)."""
    rows = [noisy_input_row(profile, float(sig), prot, runs_root, data_root=data_root, ablation=ablation)
            for prot, sig in df[["protocol", "sigma"]].drop_duplicates().itertuples(index=False)]
    return pd.concat([df, pd.DataFrame(rows)], ignore_index=True)


def verdict_table(m: pd.DataFrame, reference: str, *, key: str = "method", spread=None) -> pd.DataFrame:
    """Each row of a :func:`mean_std` table against the ``reference`` row: the difference in
    PSNR and the verdict of :func:`compare` (``spread`` for single-seed rows)."""
    ref = m[m[key] == reference].iloc[0]
    out = []
    for _, r in m.iterrows():
        if r[key] == reference:
            continue
        out.append({key: r[key], f"PSNR minus {reference} (dB)": round(float(r.psnr_mean - ref.psnr_mean), 2),
                    "verdict": compare(r.psnr_mean, r.get("psnr_std"), ref.psnr_mean, ref.get("psnr_std"), spread)})
    return pd.DataFrame(out)


def ordering_vs_paper(ours: pd.DataFrame, pub: pd.DataFrame, pairs, *, key: str = "method",
                      spread=None, floor=None) -> pd.DataFrame:
    """For each ``(a, b)`` in ``pairs`` (labels of ``key``): the paper's difference a - b and ours,
    with our verdict by :data:`TIE_RULE` and whether it agrees with the paper's sign.

    ``ours`` is a :func:`mean_std` table; ``pub`` has ``key`` and ``psnr`` columns (one noise level).
    ``floor`` is the noisy input's PSNR: a row not 'ahead' of it has not learned, and a comparison
    involving it is reported as ``not learned`` rather than as a win, loss or tie.
    """
    o = ours.set_index(key)
    p = pub.drop_duplicates(key).set_index(key)
    rows = []
    for a, b in pairs:
        if a not in o.index or b not in o.index or a not in p.index or b not in p.index:
            continue
        pd_ = float(p.loc[a, "psnr"] - p.loc[b, "psnr"])
        od = float(o.loc[a, "psnr_mean"] - o.loc[b, "psnr_mean"])
        v = compare(o.loc[a, "psnr_mean"], o.loc[a].get("psnr_std"), o.loc[b, "psnr_mean"], o.loc[b].get("psnr_std"),
                    spread)
        paper_sign = "ahead" if pd_ > 0 else ("behind" if pd_ < 0 else "tie")
        agree = "yes" if v == paper_sign else ("cannot tell (tie)" if v == "tie" else "no")
        if floor is not None and any(
                compare(o.loc[r, "psnr_mean"], o.loc[r].get("psnr_std"), floor, None, spread) != "ahead" for r in (a, b)):
            v, agree = "not learned", "cannot tell (not learned)"
        rows.append({"comparison": f"{a} vs {b}", "paper (dB)": f"{pd_:+.2f}", "ours (dB)": f"{od:+.2f}",
                     "ours": v, "agrees with the paper": agree})
    return pd.DataFrame(rows)


def tidy_table(df: pd.DataFrame, digits: Optional[dict] = None) -> pd.DataFrame:
    """A table as the book shows it: numbers rounded to what they mean (PSNR 0.01 dB, SSIM 0.0001,
    counts as integers with thousands separators, seconds 0.01 s), missing values as '–' (never
    NaN or None), booleans as yes/no."""
    rules = {"ssim": 4, "psnr": 2, "s/image": 3, "seconds": 1, " ms": 1}
    rules.update(digits or {})

    def fmt(v, name):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, numbers.Integral):
            return f"{int(v):,}"
        if isinstance(v, numbers.Real):
            d = next((n for k, n in rules.items() if k in name), 2)
            return f"{v:.{d}f}"
        return v

    out = df.copy()
    for c in out.columns:
        col, name = out[c], str(c).lower()
        if pd.api.types.is_bool_dtype(col):
            out[c] = col.map({True: "yes", False: "no"})
        elif pd.api.types.is_numeric_dtype(col):
            finite = [float(v) for v in col if _finite(v)]
            if finite and all(v == int(v) for v in finite) and "psnr" not in name and "ssim" not in name:
                out[c] = [f"{int(v):,}" if _finite(v) else "–" for v in col]
            else:
                out[c] = [fmt(float(v), name) if _finite(v) else "–" for v in col]
        else:
            out[c] = [fmt(v, name) for v in col]
    return out


TABLE_STYLE = [{"selector": "th, td", "props": "padding: 0.2em 0.7em; text-align: left; vertical-align: top"},
               {"selector": "", "props": "border-collapse: collapse; margin-bottom: 1em; font-size: 0.9em"},
               {"selector": "thead th", "props": "border-bottom: 1px solid #999"}]


def show(df: pd.DataFrame, digits: Optional[dict] = None):
    """Display a table the book's way: tidy (:func:`tidy_table`), padded, without the pandas index."""
    return tidy_table(df, digits).style.hide(axis="index").set_table_styles(TABLE_STYLE)


def glance_path(runs_root, profile: str) -> Path:
    return Path(runs_root) / f"book-glance-{profile}.json"


def record_glance(runs_root, profile: str, chapter: str, rows: list) -> None:
    """Remember a chapter's headline numbers for the intro's results-at-a-glance table."""
    path = glance_path(runs_root, profile)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[chapter] = rows
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))
