"""The GPU campaigns committed under ``results/``: their folders (``results/<plan>/``, written by
``hinas campaign run``), their finished items as rows, the plans they belong to, and how much of
each plan is done (:func:`plan_progress`, the intro's glance; :func:`not_done`, the chapters'
missing rows)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hinas.campaign import DONE, campaign_status, load_plan, read_json, result_rows


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
    """One sentence per campaign folder: how much of its plan is done, the GPU-seconds spent and
    the estimate for the rest at the measured speeds (``hinas campaign status``)."""
    out = []
    for d in campaign_folders(repo):
        for plan in plans_of(d):
            r = campaign_status(plan, d)
            t = r["totals"]
            total = sum(t[k] for k in ("done", "pending", "waiting", "failed", "corrupt", "incomplete", "stale"))
            unknown = t.get("pending_without_estimate") or 0
            out.append(f"GPU plan `{plan.name}` in `{d.relative_to(repo)}`: **{t['done']} of {total} items done** "
                       f"({t['seconds_spent']:,.0f} GPU-seconds spent; about {t['seconds_to_finish']:,.0f} s more to "
                       f"finish the rest at the speeds measured so far"
                       + (f", {unknown} item(s) without an estimate yet" if unknown else "") + "; "
                       f"`hinas campaign status --plan {plan.name} --results {d.relative_to(repo)}`).")
    return out
