"""The campaigns committed under ``results/``: their folders (``results/<plan>/``, written by
``hinas campaign run`` in GPU windows or CPU pieces), their finished items as rows, the plans
they belong to, and how much of each plan is done (:func:`plan_progress`, the intro's glance;
:func:`not_done`, the chapters' missing rows)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from hinas.campaign import DONE, campaign_status, load_plan, read_json, result_rows
from hinas.campaign.status import here_device, movement_of
from hinas.campaign.options import CURVE_FILE


def results_root(repo) -> Path:
    return Path(repo) / "results"


def campaign_folders(repo) -> list[Path]:
    """Folders under ``results/`` holding at least one finished campaign item."""
    root = results_root(repo)
    return sorted(d for d in root.iterdir() if d.is_dir() and any(d.glob(f"*/{DONE}"))) if root.is_dir() else []


def campaign_rows(repo, kind: str) -> pd.DataFrame:
    """All finished items of one kind (``search``, ``train``, ``eval``, ``bench``) over the
    campaign folders, with the folder in ``results``."""
    frames = [pd.DataFrame(result_rows(d)[kind]).assign(results=str(d.relative_to(repo)))
              for d in campaign_folders(repo)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def evaluation_per_image(repo, row, dataset: str, protocol: str, sigma) -> list:
    """The per-image scores of an eval row's (:func:`campaign_rows`) fp32 evaluation of ``dataset``
    under ``protocol`` at ``sigma``, from its item's summary; empty when it has none."""
    summary = read_json(Path(repo) / row.results / row.item / "summary.json") or {}
    for e in summary.get("evaluations", []):
        if (e.get("dataset"), e.get("protocol"), e.get("precision", "fp32"), e.get("sigma")) == (
                dataset, protocol, "fp32", sigma):
            return e.get("per_image") or []
    return []


def plans_of(folder: Path) -> list:
    """The plans whose items a campaign folder holds (named in their summaries' provenance, at the
    profile and seed offset a plan with profiles ran at)."""
    summaries = (read_json(p) for p in folder.glob("*/summary.json"))
    runs = {(p.get("plan"), p.get("plan_profile"), p.get("plan_seed_offset") or 0)
            for p in (s.get("provenance", {}) for s in summaries if isinstance(s, dict))}
    return [load_plan(n, prof, seed) for n, prof, seed in sorted((r for r in runs if r[0]), key=str)]


def not_done(repo) -> pd.DataFrame:
    """The plan items of each campaign folder that are not finished (pending or failed)."""
    rows = []
    for d in campaign_folders(repo):
        for plan in plans_of(d):
            for it in campaign_status(plan, d)["items"]:
                if it["status"] != "done":
                    rows.append({"results": str(d.relative_to(repo)), "item": it["name"], "kind": it["kind"],
                                 "status": it["status"] + (" (started)" if it.get("pieces") else "")})
    return pd.DataFrame(rows)


def plan_progress(repo) -> list[str]:
    """One sentence per campaign folder: how much of its plan is done, the seconds spent on each
    device and the estimate for the rest at the measured speeds (``hinas campaign status``)."""
    out = []
    for d in campaign_folders(repo):
        for plan in plans_of(d):
            r = campaign_status(plan, d)
            t = r["totals"]
            total = sum(t[k] for k in ("done", "pending", "waiting", "failed", "corrupt", "incomplete", "stale"))
            unknown = t.get("pending_without_estimate") or 0
            spent = ", ".join(f"{s:,.0f} on {dev}" for dev, s in seconds_by_device(r["items"]).items())
            out.append(f"Plan `{plan.name}` in `{d.relative_to(repo)}`: **{t['done']} of {total} items done** "
                       f"({t['seconds_spent']:,.0f} s spent" + (f": {spent}" if spent else "") + "; about "
                       f"{t['seconds_to_finish']:,.0f} s more to finish the rest on this build's device "
                       f"(`{here_device()}`) at its speeds measured so far, another device's where it has none"
                       + (f", {unknown} item(s) without an estimate yet" if unknown else "") + "; "
                       f"`hinas campaign status --plan {plan.name} --results {d.relative_to(repo)}`).")
    return out


def seconds_by_device(items) -> dict:
    """``{device: seconds}`` over a status report's items (a piecewise item's pieces per device)."""
    out: dict = {}
    for it in items:
        parts = it.get("by_device") or {it.get("device") or "an unrecorded device": {"seconds": it.get("seconds") or 0}}
        for dev, part in parts.items():
            out[dev] = out.get(dev, 0.0) + float(part.get("seconds") or 0)
        # seconds outside the pieces (a long training's curve scoring): its one device's, else unrecorded
        rest = float(it.get("seconds") or 0) - sum(float(p.get("seconds") or 0) for p in parts.values())
        if rest > 0.5:
            dev = next(iter(parts)) if len(parts) == 1 else "an unrecorded device"
            out[dev] = out.get(dev, 0.0) + rest
    return {dev: s for dev, s in sorted(out.items(), key=lambda kv: -kv[1]) if s > 0}


def tabled_items(repo) -> set[str]:
    """``'<results>/<item>'`` of every item a committed plan's ``tables`` name: read as those tables
    (:func:`table_views`), never pooled into another summary (e.g. Table 10's mean over seeds)."""
    from hinas.book.plans import table_items

    return {f"{d.relative_to(repo)}/{name}" for d in campaign_folders(repo) for plan in plans_of(d)
            for table in plan.tables for name in table_items(plan, table)}


def table_views(repo) -> list:
    """What chapter 6 displays of each table of a committed plan (e.g. issue 31's searched against
    unsearched genotype and DnCNN): :func:`table_view` of each."""
    out = []
    for d in campaign_folders(repo):
        for plan in plans_of(d):
            for table in plan.tables:
                out += table_view(plan, d, table, repo)
    return out


def table_view(plan, folder, table: str, repo, floor: str | None = None) -> list:
    """A table of ``plan`` from its results ``folder``, as the book shows a plan's table: its rows
    through the one reader (:func:`hinas.book.plans.table_rows`, with the ``floor`` baseline if any),
    mean ± std per row, the rows paired image by image against the first where their evaluations
    kept per-image scores, and their trainings' learning curves (``curve.json``); or the table's
    items named as missing. A table of searches (Table 8) has its own section: nothing here."""
    from IPython.display import Markdown

    from hinas.book import compare, curves
    from hinas.eval import stats
    from hinas.book.plans import plan_rows, score_rows, table_items, table_rows
    from hinas.book.tables import ours_vs_published, show

    names, folder = table_items(plan, table), Path(folder)
    if any(plan.item(n).kind != "eval" for n in names):
        return []
    shown = folder.relative_to(repo) if folder.is_relative_to(repo) else folder
    rows = table_rows(plan, score_rows(plan_rows(plan, folder), {}) if folder.is_dir() else pd.DataFrame(), table,
                      floor=floor)
    nets = rows[rows["item"].isin(names)] if len(rows) else rows
    if not len(nets) or nets.psnr.isna().all():
        return [Markdown(f"**{table}** (`{shown}`): missing; not evaluated yet ("
                         + ", ".join(f"`{n}`" for n in names) + "; the plan's pieces continue it).")]
    r0 = nets.iloc[0]
    out = [Markdown(f"**{table}** (`{shown}`; profile `{r0.profile}`, device `{r0.device}`, test set `{r0.dataset}` "
                    f"({int(r0.images)} images), sigma {r0.sigma:g}, {int(r0.train_iterations):,} training "
                    f"iterations, seeds {sorted(int(s) for s in nets.seed.dropna().unique())}, protocol `standard`)"),
           show(ours_vs_published(rows, None, ["method"]))]
    per_image = {r.method: evaluation_per_image(repo, SimpleNamespace(results=str(shown), item=r.item), r.dataset,
                                                "standard", r.sigma)
                 for r in nets[nets.protocol == "standard"].drop_duplicates("method").itertuples()}
    per_image = {k: v for k, v in per_image.items() if v}  # the rows whose evaluation kept per-image scores
    if len(per_image) > 1:
        out += [Markdown(f"Paired on the same images ({stats.PAIRED_RULE}; with one training seed a row, a call "
                         "separates these runs, not the architecture from the seed):"),
                show(compare.paired_table(per_image, next(iter(per_image))), {"dB": 3})]
    moves = source_movements(plan, folder, nets.network.dropna().unique())
    if moves:
        out.append(Markdown("Where each genotype came from (a search whose $\\alpha$ and $\\beta$ did not move "
                            "decodes float noise and tie-breaks, not a choice): " + "; ".join(moves) + "."))
    points = {r.method: (read_json(folder / r.network / CURVE_FILE) or {}).get("points", [])
              for r in nets.drop_duplicates("method").itertuples()}
    if any(points.values()):
        out.append(curves.learning_curve_figure({k: v for k, v in points.items() if v},
                                                target=float(r0.train_iterations)))
    return out


def source_movements(plan, folder: Path, trainings) -> list[str]:
    """One line per search that ``trainings`` (item names of ``plan``) took their genotype from: did
    it move (:func:`hinas.engine.movement.describe`), by the campaign's own gate
    (:func:`hinas.campaign.status.movement_of`) on its finished folder, else on its run so far (an
    unfinished search: its epoch is said)."""
    from hinas.engine.movement import describe

    out = []
    for search in dict.fromkeys(plan.item(t).genotype_from for t in trainings if plan.item(t).genotype_from):
        where = Path(folder) / search
        finished = (where / DONE).is_file()
        move = movement_of(where if finished else where / "run")
        out.append(describe(f"`{search}`", move)
                   + ("" if finished or not move else f" (unfinished: after epoch {move['epoch']})"))
    return out
