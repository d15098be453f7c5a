"""A chapter's experiments are a plan (``hinas/plans/<name>.yaml``): the chapter shows it as a
table, runs it through the campaign runner at its papermill profile, and reads its results
folder with the campaign's reader (:func:`hinas.campaign.rows.result_rows`), the same reader as
the committed GPU results.

The book's plans run into ``runs/plans-<profile>-<device>-<data>/<plan>/`` (one folder per plan,
the plans it includes beside it): a second build reuses every finished item that is the same
experiment (:func:`hinas.campaign.plan.definition`) and resumes an interrupted one. A plan's
``tables`` name the item behind each row of the paper's tables (:func:`table_rows`,
:func:`search_rows`), so the chapter's analysis never hard-codes an item.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pandas as pd

from hinas.campaign import load_plan, run_campaign
from hinas.campaign.folders import ERROR, ResultsBusy, read_json
from hinas.campaign.plan import Plan
from hinas.campaign.rows import result_rows
from hinas.errors import HinasError

BUSY_WAIT_S = 2.0  # how often a plan folder another chapter is running is tried again
BUSY_LIMIT_S = 4 * 3600.0
RUN_BUDGET_S = 24 * 3600.0  # a chapter runs its plan to the end (the build's own timeout bounds it)
SHOWN_OPTIONS = ("method", "sigma", "protocols", "limit", "crop", "from_unmoved_search", "samples", "genotype_edit")


def chapter_plan(name: str, profile: str, seed: int = 0) -> Plan:
    """The plan ``name`` at ``profile``, its seeds offset by the chapter's ``seed``."""
    return load_plan(name, profile=profile, seed=seed)


def item_config(plan: Plan, name: str, device: str, data_root):
    """The :class:`~hinas.engine.config.RunConfig` item ``name`` of ``plan`` runs with."""
    from hinas.campaign.options import item_config as config_of

    return config_of(plan.item(name), device, data_root)


def seeds(plan: Plan) -> list:
    """The seeds of ``plan``'s search and train items, in order."""
    return sorted({it.config["seed"] for it in plan.all_items() if "seed" in it.config})


def plan_table(plan: Plan) -> pd.DataFrame:
    """The experimental design as data: one row per item (its own plan's first: what it builds on),
    with its seed, what it is made from and the settings the plan gives it over the engine profile."""
    rows = []
    for it in plan.all_items():
        owner = plan.owner(it.name)
        settings = {k: v for k, v in it.config.items() if k not in ("profile", "seed", "task")}
        rows.append({"item": it.name, "plan": owner.name, "kind": it.kind, "seed": it.config.get("seed"),
                     "from": it.genotype_from or it.network_from or it.supernet_from or "",
                     "settings": (", ".join(f"{k}={v}" for k, v in settings.items()) or "the profile's")
                     if it.kind in ("search", "train") else "",
                     "options": ", ".join(f"{k}={_short(it.options[k])}" for k in SHOWN_OPTIONS
                                          if k in it.options)})
    return pd.DataFrame(rows)


def _short(value) -> str:
    if isinstance(value, dict):  # e.g. genotype_edit {kind: R1, edges: 2}
        return " ".join(f"{k} {v}" for k, v in value.items())
    return "/".join(map(str, value)) if isinstance(value, list) else str(value)


def plans_root(runs_root, profile: str, device: str, data_root) -> Path:
    """Where the book's plans at ``profile`` on ``device`` with ``data_root`` keep their folders."""
    from hinas.data.datasets import resolve_data_root

    root = resolve_data_root(data_root)
    data = "embedded" if root is None else "data-" + hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:8]
    return Path(runs_root) / f"plans-{profile}-{device}-{data}"


def committed_folder(repo, plan: Plan) -> Path:
    """Where ``plan``'s committed run at its profile lives (``results/plans-<profile>/<plan>/``, its
    included plans beside it), read with :func:`plan_rows` as a chapter's own run; it may not exist."""
    return Path(repo) / "results" / f"plans-{plan.profile}" / plan.name


def run_plan(plan: Plan, runs_root, *, device: str = "cpu", data_root=None) -> Path:
    """Run ``plan`` (and what it includes) to the end into its folder under :func:`plans_root`;
    finished items are reused. Waits while another chapter runs a plan in the same folder."""
    folder = plans_root(runs_root, plan.profile, device, data_root) / plan.name
    start = time.monotonic()
    while True:
        try:
            report = run_campaign(plan, folder, RUN_BUDGET_S, device=device, data_root=data_root,
                                  log=lambda msg: None)
            break
        except ResultsBusy:
            if time.monotonic() - start > BUSY_LIMIT_S:
                raise
            time.sleep(BUSY_WAIT_S)
    stuck = [r for r in report["ran"] if r["status"] in ("corrupt", "incomplete", "stale")]
    if stuck:
        raise HinasError(f"{folder}: " + "; ".join(f"{r['name']}: {r['status']} ({r.get('problem')})" for r in stuck))
    # a training whose loss became NaN is a result the chapter names (diverged); any other failure is not
    failed = [e for e in _errors(plan, folder) if not e["diverged"]]
    if failed:
        raise HinasError(f"{folder}: " + "; ".join(f"{e['item']} failed: {e['error']}" for e in failed))
    return folder


def _errors(plan: Plan, folder) -> list[dict]:
    """The failed items of ``plan`` and the plans it includes: item, plan, kind, seed, error and
    whether it is a training that diverged (its loss became NaN or infinite)."""
    out = []
    for owner in plan.all_plans():
        where = Path(folder) if owner is plan else Path(folder).parent / owner.name
        for it in owner.items:
            err = read_json(where / it.name / ERROR)
            if isinstance(err, dict):
                text = str(err.get("error"))
                out.append({"item": it.name, "plan": owner.name, "kind": it.kind, "seed": it.config.get("seed"),
                            "error": text, "diverged": it.kind == "train" and text.startswith("TrainingDiverged")})
    return out


def plan_rows(plan: Plan, folder) -> dict[str, pd.DataFrame]:
    """The finished items of ``plan``'s folder and of the folders it includes, as the campaign's
    rows (``search``, ``train``, ``eval``, ``bench``), each row naming its plan; a training whose
    loss became NaN is a ``train`` row with ``training='diverged'`` and its error as the evidence."""
    from hinas.book.compare import DIVERGED

    folder = Path(folder)
    out: dict[str, list] = {"search": [], "train": [], "eval": [], "bench": []}
    for owner in plan.all_plans():
        where = folder if owner is plan else folder.parent / owner.name
        for kind, rows in result_rows(where).items():
            out[kind] += [dict(r, plan=owner.name, folder=str(where / str(r["item"]))) for r in rows]
    for e in _errors(plan, folder):
        if e["diverged"]:
            model = plan.item(e["item"]).config.get("model", "hinas")
            out["train"].append({"item": e["item"], "plan": e["plan"], "seed": e["seed"], "model": model,
                                 "training": DIVERGED, "training_evidence": e["error"], "folder": None})
    return {k: pd.DataFrame(v) for k, v in out.items()}


def searches_found(plan: Plan, folder, names) -> dict:
    """``{seed: search}`` for the search items ``names`` of ``plan`` (or the plans it includes):
    the engine's summary of each, with ``run_dir`` (its item folder: history, alpha, beta and
    genotype files) and ``genotype`` (the best epoch's), as the chapter's readers take them."""
    from hinas.space.genotype import Genotype

    found = {}
    for name in names:
        where = plan.folder(folder, name)
        summary = read_json(where / "summary.json") or {}
        found[plan.item(name).config.get("seed")] = {**(summary.get("engine_summary") or {}), "run_dir": str(where),
                                                     "device": summary.get("device"),
                                                     "genotype": Genotype.load(where / "genotype.json")}
    return found


def score_rows(rows: dict[str, pd.DataFrame], method: dict) -> pd.DataFrame:
    """The ``eval`` rows as the chapters' score tables take them (one row per network or baseline,
    protocol and sigma): ``method`` names each item's row (``{item: name}``); a baseline's rows are
    named by its method. Training status and evidence come with each network's row."""
    from hinas.book.compare import NOISY_INPUT

    ev = rows["eval"]
    if not len(ev):
        return pd.DataFrame()
    tr = rows["train"]
    lost = tr[tr.folder.isna()] if len(tr) and "folder" in tr else tr.iloc[0:0]  # diverged to NaN: no evaluation
    if len(lost):  # named in the table (one row each, no score), never scored
        ev = pd.concat([ev, pd.DataFrame({"item": lost["item"], "network": lost["item"], "model": lost.model,
                                          "seed": lost.seed, "protocol": "standard", "sigma": ev.sigma.iloc[0],
                                          "dataset": ev.dataset.iloc[0], "images": 0, "inference_seconds": None,
                                          "training": lost.training, "training_evidence": lost.training_evidence})],
                       ignore_index=True)
    baseline = {"noisy-input": NOISY_INPUT, "bm3d": "BM3D"}
    out = ev.assign(method=[method.get(n, baseline.get(m, m)) for n, m in zip(ev.network.fillna(ev["item"]),
                                                                               ev.model)],
                    seconds_per_image=pd.to_numeric(ev.inference_seconds) / ev.images.clip(lower=1),
                    run=ev.network, source="measured")
    # a baseline has no seed; a network's seed stays an integer beside it
    out["seed"] = pd.Series([int(s) if isinstance(n, str) and pd.notna(s) else None for n, s in zip(ev.network, ev.seed)],
                            index=ev.index, dtype=object)
    return out


def table_items(plan: Plan, table: str) -> dict:
    """``{item name: (row label, seed)}`` of ``plan``'s table ``table``: each row's item at each of
    the table's seeds where the plan has it (a row may run at fewer seeds, e.g. Table 1's other rows)."""
    spec, names = plan.tables[table], {it.name for it in plan.all_items()}
    return {name: (label, seed) for label, pattern in spec["rows"].items() for seed in spec["seeds"]
            if (name := pattern.replace("{seed}", str(seed))) in names}


def table_rows(plan: Plan, scores: pd.DataFrame, table: str, floor: str | None = None) -> pd.DataFrame:
    """The rows of ``plan``'s table ``table`` (its ``tables``) from :func:`score_rows`: each row's
    eval item at each of the table's seeds, labelled ``method`` (and ``setting``) by the table, with
    its network's width setting (``node_channels``); a network whose training diverged keeps its
    row, unscored. ``floor`` (a baseline item) adds its rows on the same images, e.g. the noisy input."""
    spec = plan.tables[table]
    wanted = {}
    for name, (label, _) in table_items(plan, table).items():
        network = plan.item(name).network_from
        wanted[network] = (label, plan.item(network).config.get("node_channels"))
    if not len(scores):
        return scores
    net = scores.network.fillna(scores["item"])
    picked = scores[net.isin(wanted)].copy()
    labels = [wanted[n] for n in net[net.isin(wanted)]]
    picked["method"] = picked["setting"] = [label for label, _ in labels]
    picked["node_channels"] = [str(c) if c else "searched" for _, c in labels]
    order = {label: i for i, label in enumerate(spec["rows"])}  # the table's rows as the plan lists them
    picked = picked.assign(_row=picked.method.map(order)).sort_values(["_row", "seed"], kind="stable").drop(columns="_row")
    if floor is not None:
        base = scores[scores["item"] == floor]
        picked = pd.concat([picked, base.assign(setting=base.method)], ignore_index=True)
    return picked.reset_index(drop=True)


def search_rows(plan: Plan, rows: dict[str, pd.DataFrame], table: str) -> pd.DataFrame:
    """The search items of ``plan``'s table ``table`` (e.g. Table 8), one row per search, labelled
    by the table (column ``label``) with its seconds, V scores, device and seed."""
    names = {name: label for name, (label, _) in table_items(plan, table).items()}
    se = rows["search"]
    if not len(se):
        return se
    picked = se[se["item"].isin(names)].copy()
    picked["label"] = picked["item"].map(names)
    return picked.reset_index(drop=True)


def bench_result(plan: Plan, folder, name: str) -> dict:
    """The measurements of the bench item ``name`` (its summary's ``supernet_memory``): peak
    memory, step time and cell evaluations per mode, their ratios and the supernet's size."""
    return (read_json(plan.folder(folder, name) / "summary.json") or {}).get("supernet_memory") or {}
