"""Chapter 4's account of the paper's full-length search (``search-dn-s0-full`` of the plan
``paper``), read from ``results/paper/search-dn-s0-full/``, finished or not: the progress
(``progress.json``; the estimate for the rest is ``hinas campaign status``'s), the alpha/beta
trajectories (``alpha.csv``, ``beta.csv``), the movement gate (:mod:`hinas.engine.movement`) and
the epoch from which each epoch's decoding of the logged weights stopped changing, the epoch
selected on V and the paper's Sec. 4.2.4 observations on its decoding. Computed from
the folder's files only; an unfinished search claims no genotype."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hinas.campaign import SUMMARY, read_json
from hinas.engine.movement import MOVED_THRESHOLD

PLAN, ITEM = "paper", "search-dn-s0-full"
START = "scripts/cpu_piece.sh 7200"  # README "Advance the plan on a CPU": one 2-hour piece
SETTING_KEYS = ("epochs", "arch_start_epoch", "val_start_epoch", "layers", "levels", "steps", "partial_channels",
                "a_lr", "a_weight_decay", "task", "width_factors", "lwas")


def item_folder(repo, plan: str = PLAN, item: str = ITEM) -> Path:
    return Path(repo) / "results" / plan / item


def logs_folder(folder) -> Path | None:
    """Where the run's CSV logs are: the item folder once finished, its ``run/`` while running."""
    for d in (Path(folder), Path(folder) / "run"):
        if (d / "alpha.csv").is_file():
            return d
    return None


def settings(folder, plan: str = PLAN) -> dict:
    """The run's length and grid: its ``config.yaml``, else the plan item's configuration."""
    import yaml

    from hinas.campaign import item_config

    for d in (Path(folder), Path(folder) / "run"):
        if (d / "config.yaml").is_file():
            conf = yaml.safe_load((d / "config.yaml").read_text()) or {}
            return {k: conf.get(k) for k in SETTING_KEYS}
    cfg = item_config(_plan_item(plan, Path(folder).name)[1], None, None)
    return {k: getattr(cfg, k, None) for k in SETTING_KEYS}


def _plan_item(plan: str, name: str):
    from hinas.campaign import load_plan

    return (p := load_plan(plan)), next(i for i in p.items if i.name == name)


def status_entry(folder, plan: str = PLAN) -> dict:
    """The item's line of ``hinas campaign status``: :func:`~hinas.campaign.status.item_status`
    annotated by :func:`~hinas.campaign.status.annotate` (state, position, total, estimate)."""
    from hinas.campaign.status import annotate, item_status

    folder = Path(folder)
    p, item = _plan_item(plan, folder.name)
    report = {"items": [item_status(folder.parent, item)]}
    annotate(p, folder.parent, report)
    return report["items"][0]


def phase(epochs_done: int, s: dict, finished: bool = False) -> str:
    """The phase of the epoch under way after ``epochs_done`` finished epochs."""
    e, a, v, n = epochs_done + 1, s["arch_start_epoch"], s["val_start_epoch"], s["epochs"]
    if finished or epochs_done >= n:
        return "finished"
    if e <= a:
        return f"warm-up (epochs 1-{a}): weight steps only, alpha and beta are not trained yet"
    if e <= v:
        return f"architecture steps (epochs {a + 1}-{v}): a first-order alpha/beta step before each weight step"
    return f"architecture steps and validation on V (epochs {v + 1}-{n})"


def progress(folder, plan: str = PLAN) -> dict:
    """State, epochs and steps done of the totals, the phase and the status line's estimate."""
    folder = Path(folder)
    entry, s, logs = status_entry(folder, plan), settings(folder, plan), logs_folder(folder)
    hist = pd.read_csv(logs / "history.csv") if logs and (logs / "history.csv").is_file() else pd.DataFrame()
    epochs_done = int(hist.epoch.max()) if len(hist) else 0
    done = entry["status"] == "done"
    state = {"done": "finished", "pending": "in progress"}.get(entry["status"], entry["status"])
    if state == "in progress" and not entry["pieces"] and logs is None:
        state = "not started"
    steps, total, best = entry.get("position", 0), entry.get("total"), None
    if done:
        summary = read_json(folder / SUMMARY, {}) or {}
        steps = total = (summary.get("timings") or {}).get("steps")
        best = (summary.get("metrics") or {}).get("best_epoch")
    return {"item": folder.name, "state": state, "epochs_done": epochs_done, "epochs": s["epochs"], "steps": steps,
            "steps_total": total, "phase": phase(epochs_done, s, done), "best_epoch": best, "entry": entry,
            "settings": s}


def pieces_table(folder) -> pd.DataFrame:
    """Pieces per device (:func:`~hinas.campaign.status.pieces_by_device`) with the hosts, threads
    and commits that ran them (``progress.json``)."""
    from hinas.campaign.status import pieces_by_device

    prog = read_json(Path(folder) / "progress.json", {}) or {}
    ran = [p for p in prog.get("history", []) if p.get("status") in ("paused", "finished")]
    rows = []
    for device, d in pieces_by_device(prog).items():
        mine = [p for p in ran if (p.get("device") or "unrecorded") == device]
        rows.append({"device": device, "pieces": d["pieces"], "seconds": d["seconds"], "steps": d["moved"],
                     "hosts": ", ".join(sorted({str(p.get("host") or "–") for p in mine})),
                     "threads": ", ".join(sorted({str(p.get("threads") or "–") for p in mine})),
                     "commits": ", ".join(dict.fromkeys(_short(p.get("git_revision")) for p in mine))})
    return pd.DataFrame(rows)


def trajectories(logs, s: dict) -> pd.DataFrame:
    """Per epoch: the largest ``|alpha - 1/K|`` of each layer (over its edges and ops) and the
    largest change of each beta source (stem, or layer and level) from its start
    (:func:`~hinas.engine.movement.initial_beta_weights`); columns ``epoch, what, label, value``."""
    from hinas.engine.movement import initial_beta_weights
    from hinas.space.grid import MOVE_NAMES, grid_sources

    alpha, beta = pd.read_csv(Path(logs) / "alpha.csv"), pd.read_csv(Path(logs) / "beta.csv")
    alpha["value"] = (alpha.weight - 1 / alpha.op.nunique()).abs()
    a = alpha.groupby(["epoch", "layer"]).value.max().reset_index()
    a["what"], a["label"] = "alpha", [f"layer {layer}" for layer in a.layer]
    init = initial_beta_weights(s["layers"], s["levels"])
    row = {(src.layer, src.level): src.index for src in grid_sources(s["layers"], s["levels"])}
    beta["value"] = [abs(r.weight - float(init[row[(r.layer, r.level)], MOVE_NAMES.index(r.move)]))
                     for r in beta.itertuples()]
    b = beta.groupby(["epoch", "layer", "level"]).value.max().reset_index()
    b["what"] = "beta"
    b["label"] = ["stem" if layer < 0 else f"layer {layer}, level {level}" for layer, level in zip(b.layer, b.level)]
    out = pd.concat([a, b], ignore_index=True)[["epoch", "what", "label", "value"]]
    return out.assign(value=out.value.round(6))  # the logs' precision


def trajectory_figure(traj: pd.DataFrame, s: dict):
    """The two trajectories of :func:`trajectories` over the whole run's epochs, the warm-up
    (epochs 1 to ``arch_start_epoch``: alpha and beta untrained) shaded, the start of validation
    dotted and the movement threshold dashed."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from hinas.book.figures import STYLE  # the book's figure style

    with matplotlib.rc_context(STYLE):
        fig = plt.figure(figsize=(10, 4.2))
        plt.close(fig)  # shown once, where the caller displays it
        axes = fig.subplots(1, 2, sharey=True)
        titles = {"alpha": "alpha: largest |alpha - 1/7| per layer", "beta": "beta: largest change per source"}
        for ax, (what, title) in zip(axes, titles.items()):
            ax.axvspan(0.5, s["arch_start_epoch"] + 0.5, color="grey", alpha=0.15, label="warm-up: weights only")
            ax.axvline(s["val_start_epoch"] + 0.5, color="grey", ls=":", lw=1, label="validation from here")
            ax.axhline(MOVED_THRESHOLD, color="k", ls="--", lw=1, label=f"moved ({MOVED_THRESHOLD})")
            for label, g in traj[traj.what == what].groupby("label", sort=False):
                ax.plot(g.epoch, g.value, "o-", ms=2.5, lw=1, label=label)
            ax.set_yscale("symlog", linthresh=1e-3)
            ax.set(title=title, xlabel="epoch", xlim=(0.5, s["epochs"] + 0.5),
                   ylim=(-1e-4, max(0.1, 2 * traj.value.max())))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
        axes[0].set_ylabel("distance from the start")
        fig.tight_layout()
    return fig


def search_figure(folder):
    """:func:`trajectory_figure` of any search folder (a finished one or a run in progress): how
    far alpha and beta moved per layer and source, epoch by epoch, over its own schedule."""
    s = settings(folder)
    return trajectory_figure(trajectories(logs_folder(folder), s), s)


def decodings(logs, s: dict) -> pd.DataFrame | None:
    """Each epoch's decoding of its logged alpha/beta rows: the cells (top-2 inputs per node with
    their best op, :func:`~hinas.space.genotype.decode_cell`) and the Viterbi width path; ``changed``
    against the epoch before. None where the CSVs cannot give it (partial channels: the edge
    weights are not logged)."""
    import torch

    from hinas.space.genotype import decode_cell, viterbi
    from hinas.space.grid import MOVE_NAMES, grid_sources

    if (s.get("partial_channels") or 1) > 1:
        return None
    alpha, beta = pd.read_csv(Path(logs) / "alpha.csv"), pd.read_csv(Path(logs) / "beta.csv")
    ops = list(dict.fromkeys(alpha.op))
    row = {(src.layer, src.level): src.index for src in grid_sources(s["layers"], s["levels"])}
    rows, before = [], None
    for epoch, a in alpha.groupby("epoch"):
        cells = []
        for _, la in a.groupby("layer", sort=False):
            w = la.pivot(index="edge", columns="op", values="weight")[ops].sort_index()
            cells.append(decode_cell(torch.tensor(w.values, dtype=torch.float64), s["steps"], ops))
        if len(cells) == 1:  # one alpha for every layer (no LWAS)
            cells *= s["layers"]
        bt = torch.zeros(len(row), 3, dtype=torch.float64)
        for r in beta[beta.epoch == epoch].itertuples():
            bt[row[(r.layer, r.level)], MOVE_NAMES.index(r.move)] = r.weight
        key = json.dumps({"cells": cells, "path": viterbi(bt, s["layers"], s["levels"])})
        rows.append({"epoch": int(epoch), "decoding": key, "changed": before is not None and key != before})
        before = key
    return pd.DataFrame(rows)


def stable_since(dec: pd.DataFrame) -> int | None:
    """The first epoch from which the decoding is the last epoch's, in every epoch after it."""
    if dec is None or not len(dec):
        return None
    changes = dec.epoch[dec.changed]  # the last change starts the final run of equal decodings
    return int(changes.max() if len(changes) else dec.epoch.iloc[0])


def selection(logs, dec: pd.DataFrame | None) -> dict | None:
    """The epoch the search keeps (the best SSIM + PSNR/100 on V so far, the engine's rule, the first
    on a tie), the last epoch, and whether the two decode alike (None before any validation)."""
    from hinas.book.search_report import best_validated

    h = pd.read_csv(Path(logs) / "history.csv")
    best = best_validated(h)
    if best is None:
        return None
    last = int(h.dropna(subset=["val_psnr"]).epoch.iloc[-1])
    out = {"best": int(best.epoch), "psnr": float(best.val_psnr), "ssim": float(best.val_ssim),
           "last": last, "decoding": None, "same": None}
    if dec is not None and len(dec):
        by = dec.set_index("epoch").decoding
        out["decoding"] = json.loads(by[out["best"]])
        out["same"] = by[out["best"]] == by.iloc[-1]
    return out


def selection_reading(sel: dict | None, finished: bool) -> str:
    """Which epoch's supernet is (or so far would be) kept, against the last epoch's decoding."""
    if sel is None:
        return "No validation on V yet: no epoch is selected."
    text = (f"**Selection on V** ({'kept' if finished else 'best so far; provisional'}): epoch {sel['best']} "
            f"(PSNR {sel['psnr']:.2f} dB, SSIM {sel['ssim']:.4f}) of the epochs validated up to {sel['last']}")
    if sel["same"] is None:
        return text + "."
    return text + (": its decoding is the last epoch's." if sel["same"] else
                   f": its decoding **differs** from epoch {sel['last']}'s (the search keeps the selected epoch's genotype, "
                   "not the last one's).")


def observations(sel: dict | None) -> pd.DataFrame:
    """The paper's Sec. 4.2.4 observations (:func:`~hinas.space.genotype.paper_observations`) on the
    selected epoch's decoding."""
    from hinas.space.genotype import paper_observations

    if not sel or sel["decoding"] is None:
        return pd.DataFrame()
    rows = paper_observations(sel["decoding"]["cells"], sel["decoding"]["path"])
    return pd.DataFrame(rows).assign(holds=lambda d: d.holds.map({True: "holds", False: "does not hold"}))


def selected_genotype(sel: dict | None, s: dict):
    """The selected epoch's decoding as a :class:`~hinas.space.genotype.Genotype` (to draw), or None."""
    from hinas.space.genotype import Genotype

    if not sel or sel["decoding"] is None:
        return None
    extra = {k: s[k] for k in ("width_factors", "lwas") if s.get(k) is not None}
    return Genotype(task=s.get("task") or "denoise", steps=s["steps"], cells=sel["decoding"]["cells"],
                    path=sel["decoding"]["path"], provenance={"epoch": sel["best"], "selection": "best on V"}, **extra)


def gate(folder) -> dict | None:
    """The movement gate the campaign applies (:func:`~hinas.campaign.status.movement_of`): the
    summary's once finished, else measured from the last epoch's alpha/beta rows so far."""
    from hinas.campaign.status import movement_of

    folder = Path(folder)
    return movement_of(folder if (folder / SUMMARY).is_file() else (logs_folder(folder) or folder))


def _hours(seconds) -> str:
    return f"{seconds:,.0f} s (about " + (f"{seconds / 3600:.1f} h)" if seconds >= 3600 else f"{seconds / 60:.0f} min)")


def _short(rev) -> str:
    rev = str(rev or "unrecorded")
    return rev[:12] + ("+dirty" if rev.endswith("+dirty") else "")


def progress_reading(p: dict) -> str:
    """The state in words: not started (with the command), in progress, failed or finished."""
    item, n, total = p["item"], p["epochs_done"], p["epochs"]
    if p["state"] == "not started":
        return (f"`{item}`: **not started.** No piece has run yet; `{START}` runs a piece of it on the CPU "
                "(README \"Advance the plan on a CPU\"), and a GPU window continues the same item.")
    e = p["entry"]
    steps = f"{p['steps']:,} of {p['steps_total']:,} steps" if p["steps_total"] else f"{p['steps'] or 0:,} steps"
    if p["state"] == "finished":
        return (f"`{item}`: **finished: {n} of {total} epochs** ({steps}, {e['pieces']} pieces, "
                f"{_hours(float(e['seconds']))}). `genotype.json` holds the decoding of epoch {p['best_epoch']}, the "
                "one the search kept (best on V); the gate below says whether alpha and beta moved.")
    if p["state"] != "in progress":
        why = e.get("problem") or e.get("error") or e.get("reason") or ""
        return f"`{item}`: **{p['state']}** after {n} of {total} epochs; no genotype is claimed. {why}".strip()
    text = (f"`{item}`: **in progress: {n} of {total} epochs; no genotype is claimed.** {steps} done "
            f"(`progress.json`); the epoch under way is in the {p['phase']}. {e['pieces']} piece(s), "
            f"{_hours(float(e['seconds']))} spent. ")
    text += (f"The rest, as `hinas campaign status` estimates it: {_hours(e['estimate'])} on `{e['device']}` "
             f"({e['estimate_from']})." if e.get("estimate") is not None
             else f"No estimate for the rest yet ({e.get('estimate_from')}).")
    per_epoch = p["steps_total"] / total if p["steps_total"] and total else None
    if per_epoch and n * per_epoch > (p["steps"] or 0) + per_epoch:
        text += (f" `history.csv` is ahead of `progress.json` ({n} epochs against {p['steps']} steps): the folder "
                 "was copied while a piece was running, which records itself when it pauses.")
    return text


def gate_reading(p: dict, movement: dict | None, dec: pd.DataFrame | None) -> str:
    """The gate at the last epoch done and the epoch from which the decoding stopped changing."""
    from hinas.engine.movement import describe

    if movement is None:
        return "No alpha/beta rows yet: the gate has nothing to measure."
    epoch = movement.get("epoch", p["epochs_done"])
    name = f"`{p['item']}`"
    text = f"**The gate at epoch {epoch}** (the last done): {describe(name, movement)}."
    if p["epochs_done"] <= p["settings"]["arch_start_epoch"] and not movement.get("moved"):
        text += (f" No architecture step runs before epoch {p['settings']['arch_start_epoch'] + 1}, so alpha and beta "
                 "are at their start by construction.")
    if dec is None:
        return text + (" The decoding per epoch cannot be recomputed from the CSVs (partial channels: the edge "
                       "weights are not logged); only the gate is shown.")
    since = stable_since(dec)
    text += (f" Each epoch's alpha/beta rows, decoded as the search decodes (top-2 inputs per node, Viterbi path; "
             f"from weights rounded to 6 decimals), give the same architecture since epoch **{since}** "
             f"({int(dec.changed.sum())} change(s) over {len(dec)} epochs).")
    if not movement.get("moved"):
        text += " As alpha and beta have not moved, that decoding breaks ties of near-uniform weights: no choice."
    return text


def drift(folder, p: dict) -> dict | None:
    """How far alpha's logits moved against how far Adam could have moved them: the largest logit
    difference from the start (:func:`hinas.engine.movement.logit_spread`, last epoch logged), the
    architecture steps taken and ``a_lr`` times them (a gradient of steady sign moves a logit by
    about ``a_lr`` a step), and the raw alpha values' mean, which start at 1 (the released
    ``torch.ones``): from the kept supernet once finished, else from the run's checkpoint."""
    from hinas.campaign.rescore import SUPERNET_FILE
    from hinas.engine.common import load_checkpoint
    from hinas.engine.movement import logit_spread

    logs, s = logs_folder(folder), p["settings"]
    if logs is None or not s.get("a_lr") or not p["steps_total"] or not p["epochs"]:
        return None
    alpha = pd.read_csv(logs / "alpha.csv")
    epoch = int(alpha.epoch.max())
    steps = max(0, epoch - s["arch_start_epoch"]) * p["steps_total"] // p["epochs"]
    out = {"epoch": epoch, "epochs": p["epochs"], "spread": logit_spread(alpha[alpha.epoch == epoch].to_dict("records")),
           "arch_steps": steps, "bound": s["a_lr"] * steps, "a_lr": s["a_lr"], "a_weight_decay": s.get("a_weight_decay"),
           "raw_alpha_mean": None}
    try:
        if (Path(folder) / SUPERNET_FILE).is_file():
            from safetensors.torch import load_file

            raw = load_file(Path(folder) / SUPERNET_FILE).get("arch_alpha")
        else:
            raw = load_checkpoint(logs / "checkpoint.pt")["model"].get("arch_alpha")
        out["raw_alpha_mean"] = float(raw.mean()) if raw is not None else None
    except Exception:  # no weights committed, or unreadable: the logits' differences are still said
        pass
    return out


def gate_eta(traj: pd.DataFrame, window: int = 20) -> dict:
    """``{'alpha'|'beta': epoch}``: where a straight line through the largest movement of the last
    ``window`` logged epochs (:func:`trajectories`) reaches the gate; None for one already through
    it, not approaching it, or with fewer than 5 epochs of architecture steps to fit."""
    import numpy as np

    out = {}
    for what in ("alpha", "beta"):
        v = traj[traj.what == what].groupby("epoch").value.max().iloc[-window:]
        v = v[v > 0]  # the warm-up's epochs (no architecture step yet) say nothing about the rate
        slope = float(np.polyfit(v.index.to_numpy(float), v.to_numpy(float), 1)[0]) if len(v) >= 5 else 0.0
        last = float(v.iloc[-1]) if len(v) else 0.0
        out[what] = (int(np.ceil(v.index[-1] + (MOVED_THRESHOLD - last) / slope))
                     if slope > 0 and last < MOVED_THRESHOLD else None)
    return out


def drift_reading(d: dict | None, finished: bool, moved: bool, eta: dict | None = None) -> str:
    """Why alpha moved as little as it did, in numbers (:func:`drift`); after a finished search that
    did not move, what that means for its genotype."""
    if d is None or not d["arch_steps"]:
        return ""
    text = (f"**How far alpha could have moved.** In {d['arch_steps']:,} architecture steps of Adam at learning rate "
            f"{d['a_lr']:g} (to epoch {d['epoch']}), a gradient of steady sign would move a logit by about "
            f"{d['bound']:.2f}; the largest difference of alpha's logits from the uniform start is {d['spread']:.4f}, "
            f"{d['spread'] / d['bound']:.1%} of that: the differences between the ops' gradients have been small "
            "against the gradients' running size, which sets Adam's step.")
    if d["raw_alpha_mean"] is not None:
        text += (f" The raw alpha values, which start at 1 (the released `torch.ones`), average {d['raw_alpha_mean']:.3f}"
                 f" now: Adam's weight decay ({d['a_weight_decay']:g} times alpha, the same for every op of an edge "
                 "at the start) pulled them all down together (the loss gradient of an edge's logits sums to zero, "
                 "so only the decay moves them in common), which no softmax weight sees.")
    reach = [f"{what} at about epoch {e:,}" for what, e in (eta or {}).items() if e is not None]
    if reach and not moved:
        text += (" At the rate of the last 20 epochs (a straight-line extrapolation, not a measurement), the gate's "
                 f"{MOVED_THRESHOLD} would be reached by " + " and ".join(reach)
                 + f", against the schedule's {d['epochs']} epochs.")
    if finished and not moved:
        text += (" **After the full schedule the search did not move.** Its genotype is then how near-uniform weights "
                 "break ties, not a choice of the search: training it (chapter 6, \"Full search against the first "
                 "search\") measures an architecture of the space, and this run gives no evidence for the paper's "
                 "claim that the search finds the cell. The released settings are kept (faithful first); a search "
                 "that moves would need a change to them, which this plan does not make.")
    return text


def section(repo, plan: str = PLAN, item: str = ITEM) -> list:
    """What chapter 4 displays: the progress, the pieces per device, the trajectories, the gate, the
    selection on V and the paper's observations on the selected decoding."""
    from IPython.display import Markdown

    from hinas.book import tables

    folder = item_folder(repo, plan, item)
    p = progress(folder, plan)
    out = [Markdown(progress_reading(p))]
    if p["state"] == "not started":
        return out
    pieces = pieces_table(folder)
    if len(pieces):
        out.append(tables.show(pieces, {"seconds": 0}))
    logs = logs_folder(folder)
    if logs is None:
        return out + [Markdown("No epoch has finished yet: no alpha/beta rows to show.")]
    dec = decodings(logs, p["settings"])
    movement, sel = gate(folder), selection(logs, dec)
    traj = trajectories(logs, p["settings"])
    out += [trajectory_figure(traj, p["settings"]), Markdown(gate_reading(p, movement, dec))]
    why = drift_reading(drift(folder, p), p["state"] == "finished", bool(movement and movement.get("moved")),
                        gate_eta(traj))
    out += ([Markdown(why)] if why else []) + [Markdown(selection_reading(sel, p["state"] == "finished"))]
    g = selected_genotype(sel, p["settings"])
    if g is not None:  # the cells and the width path the search keeps (the paper's Fig. 10(a) is its own)
        from hinas.book.figures import genotype_drawings

        out += genotype_drawings(g, f"epoch {sel['best']}" + ("" if p["state"] == "finished" else ", provisional"))
    obs = observations(sel)
    if len(obs):
        moved = bool(movement and movement.get("moved"))
        out += [Markdown(f"**The paper's observations (Sec. 4.2.4) on epoch {sel['best']}'s decoding**"
                         + ("" if moved else " (alpha and beta have not moved: these test how near-uniform weights "
                                              "break ties, not what the search chose)") + ":"),
                tables.show(obs)]
    return out
