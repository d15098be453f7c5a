"""Chapter 4's account of a real search, from the results folder of its plan (``hinas/plans/search.yaml``,
:mod:`hinas.book.plans`): the
configuration, each search's summary and logs (``history.csv``, ``alpha.csv``, ``beta.csv``), how
far alpha and beta moved, which epoch was kept, the derived networks' sizes, their training and
test scores against the noisy input, and the chapter's glance rows. Tables are DataFrames for
:func:`hinas.book.tables.show`; readings are Markdown sentences computed from the numbers."""

from __future__ import annotations

import json

from pathlib import Path

import pandas as pd

from hinas.book.compare import NOISY_INPUT, TRAINED, scored, seed_spread, unscored_lines, with_status
from hinas.eval.stats import compare
from hinas.book.plans import score_rows
from hinas.book.tables import fmt_mean_std
from hinas.engine.movement import MOVED_THRESHOLD, alpha_dev_by_epoch, beta_change_by_epoch
from hinas.eval.metrics import selection_score
from hinas.space.genotype import Genotype

# the RunConfig settings chapter 4 lists: the search space, the search and the training budget
CONFIG_KEYS = ("f", "layers", "steps", "levels", "epochs", "batch_size", "patch", "arch_start_epoch",
               "val_start_epoch", "w_lr", "a_lr", "search_sigma", "sigma", "net_f", "iterations", "train_batch_size",
               "train_lr", "nonpositive_ssim", "max_images")
PAPER_F = 20  # the paper's network width f (Sec. 4.1), at which the sizes are also counted
SIZE_CROP = (64, 64)  # FLOPs are counted for one grey input of this size


def config_table(cfg, keys=CONFIG_KEYS) -> pd.DataFrame:
    """``cfg``'s values of ``keys`` as two side-by-side (setting, value) column pairs; an unset
    value (None: the default applies, e.g. ``max_images``: all) shows as the book's '–'."""
    keys = list(keys)
    half = (len(keys) + 1) // 2
    pad = [""] * (2 * half - len(keys))

    def values(names):
        return ["–" if getattr(cfg, k) is None else str(getattr(cfg, k)) for k in names]

    return pd.DataFrame({"setting": keys[:half], "value": values(keys[:half]),
                         "setting ": keys[half:] + pad, "value ": values(keys[half:]) + pad})


def run_log(run: dict, name: str = "history.csv") -> pd.DataFrame:
    """A CSV log of a run (``history.csv``, ``alpha.csv``, ``beta.csv``)."""
    return pd.read_csv(Path(run["run_dir"]) / name)


def search_histories(found: dict) -> dict:
    """``{seed: history.csv}`` of each search."""
    return {s: run_log(r) for s, r in found.items()}


def alpha_movement(alpha: pd.DataFrame) -> dict:
    """How far the op weights (``alpha.csv``) moved from uniform by the last epoch: the largest
    ``|alpha - 1/K|`` (``drift``, with its ``op`` and ``layer``), the median lead of the kept op
    over its runner-up per edge (``median_margin``) and ``moved`` (drift >= MOVED_THRESHOLD)."""
    last = alpha[alpha.epoch == alpha.epoch.max()]
    n_ops = alpha.op.nunique()
    top = last.loc[(last.weight - 1 / n_ops).abs().idxmax()]  # where the drift is
    edge = [c for c in last.columns if c not in ("op", "weight", "epoch")]
    margins = last.sort_values("weight", ascending=False).groupby(edge).weight.apply(
        lambda w: float(w.iloc[0] - w.iloc[1]) if len(w) > 1 else 0.0)
    drift = alpha_dev_by_epoch(alpha.to_dict("records"))[int(alpha.epoch.max())]
    return {"drift": drift, "op": top.op, "layer": int(top.layer), "n_ops": n_ops, "epoch": int(alpha.epoch.max()),
            "median_margin": float(margins.median()), "moved": drift >= MOVED_THRESHOLD}


def alpha_reading(m: dict, seed, seeds_agree: bool | None = None) -> str:
    """What :func:`alpha_movement` says about the decoded cells; ``seeds_agree``: whether every
    seed's search decoded the same cells (None: one seed), which a preference must survive."""
    text = (f"Measured (seed {seed}, epoch {m['epoch']}): the largest |alpha - 1/{m['n_ops']}| over all layers, edges "
            f"and ops is **{m['drift']:.4f}** (`{m['op']}` in layer {m['layer']}); the op the decoding keeps on an edge "
            f"leads its runner-up by {m['median_margin']:.4f} in the median edge. ")
    if not m["moved"]:
        return text + ("**The mixture has barely moved from uniform**: at this budget the decoding picks ops by "
                       "differences of this size, so the cells found here say little about which ops the search prefers.")
    if seeds_agree is False:
        return text + ("The mixture has moved away from uniform, but **the seeds decode different cells**: the "
                       "preferences this search formed are not yet the same from one seed to the next.")
    return text + "The mixture has moved away from uniform: the decoding follows preferences the search formed."


def seeds_agree(found: dict) -> bool | None:
    """Whether the searches of every seed decoded the same cells (None with a single seed)."""
    if len(found) < 2:
        return None
    return len({json.dumps(r["genotype"].to_dict()["cells"]) for r in found.values()}) == 1


def beta_change(beta: pd.DataFrame) -> dict:
    """The largest change of a width-path weight (``beta.csv``) by the last epoch, from its start
    (:func:`hinas.engine.movement.beta_change_by_epoch`: uniform over a source's possible moves)."""
    last = int(beta.epoch.max())
    change = beta_change_by_epoch(beta.to_dict("records"))[last]
    return {"change": change, "last": last, "moved": change >= MOVED_THRESHOLD}


def beta_reading(m: dict) -> str:
    """What :func:`beta_change` says about the decoded width path."""
    return (f"Measured: the largest change of a $\\beta$ weight from its start (uniform over a source's moves) to "
            f"epoch {m['last']} is "
            f"**{m['change']:.4f}**" + (" : the width path is a choice the search made." if m["moved"] else
                                        " : the transition weights have barely moved, so Viterbi decides between "
                                        "nearly equal paths."))


def best_validated(history: pd.DataFrame):
    """The row of ``history.csv`` whose epoch a search keeps: the best SSIM + PSNR/100 on V (the
    engine's rule; the first on a tie); None before any validation."""
    v = history.dropna(subset=["val_psnr"])
    return v.loc[selection_score(v.val_psnr, v.val_ssim).idxmax()] if len(v) else None


def epoch_choice(found: dict, histories: dict) -> pd.DataFrame:
    """Per seed: the validated epochs, the best by SSIM + PSNR/100 recomputed from ``history.csv``
    beside the one ``summary.json`` kept, the last epoch, and whether the best and final decodings agree."""
    rows = []
    for s, h in histories.items():
        v, kept = h.dropna(subset=["val_psnr"]), best_validated(h)
        best = None if kept is None else int(kept.epoch)
        final = Genotype.load(Path(found[s]["run_dir"]) / "genotype_final.json")
        rows.append({"seed": s, "validated epochs": ", ".join(str(int(e)) for e in v.epoch),
                     "best epoch (recomputed)": best, "best epoch (summary.json)": found[s]["best_epoch"],
                     "last epoch": int(h.epoch.max()),
                     "best genotype = final genotype": final.architecture() == found[s]["genotype"].architecture()})
    return pd.DataFrame(rows)


def epoch_choice_reading(epochs: pd.DataFrame) -> str:
    """Whether keeping the best supernet (Sec. 3.3) changed anything, from :func:`epoch_choice`."""
    if (epochs["best epoch (recomputed)"] == epochs["last epoch"]).all():
        return ("In every seed the best epoch is the last one, so keeping the best supernet changed nothing here: "
                "the collapse that motivates it (Sec. 3.3) did not occur in a search this short.")
    return "In at least one seed the best epoch is not the last: keeping the best supernet (Sec. 3.3) mattered."


def final_genotypes(found: dict) -> dict:
    """``{seed: the last epoch's decoding}`` of each search (``genotype_final.json``)."""
    return {s: Genotype.load(Path(r["run_dir"]) / "genotype_final.json") for s, r in found.items()}


def explorer_runs(found: dict) -> dict:
    """The best-epoch and final-epoch genotype of every seed, as :class:`GenotypeExplorer` runs."""
    final = final_genotypes(found)
    return {"search: best epoch": {f"seed {s}": r["genotype"] for s, r in found.items()},
            "search: final epoch": {f"seed {s}": g for s, g in final.items()}}


def network_sizes(found: dict, net_f) -> pd.DataFrame:
    """Parameters and MFLOPs (one 64x64 grey input) of each seed's derived network at ``net_f``
    (the book's, None: the paper's) and at the paper's f = 20."""
    from hinas.space.network import build_network, count_flops, count_parameters

    rows = []
    for s, r in found.items():
        g = r["genotype"]
        for f in sorted({net_f or PAPER_F, PAPER_F}):
            net = build_network(g, f)
            rows.append({"seed": s, "f": f, "width path": "-".join(f"{g.width_factors[h]:g}" for h in g.path),
                         "params": count_parameters(net),
                         "MFLOPs (64x64)": count_flops(net, SIZE_CROP, 1)["flops"] / 1e6})
    return pd.DataFrame(rows)


def sizes_reading(sizes: pd.DataFrame) -> str:
    """Our parameter range at f = 20 beside the paper's (Table 1)."""
    p20 = sizes[sizes.f == PAPER_F].params
    return (f"At $f = 20$ our networks have {p20.min() / 1e6:.2f}-{p20.max() / 1e6:.2f} M parameters; the paper's "
            "denoising networks have 0.22-0.34 M (published, Table 1).")


def chapter_scores(rows: dict) -> pd.DataFrame:
    """Each seed's derived network, trained and scored under both protocols by the chapter's plan,
    beside the noisy input on the same images (:func:`hinas.book.plans.score_rows`), each network
    row with its training status (:func:`hinas.book.compare.with_status`)."""
    names = {r["item"]: "HiNAS (this chapter)" for r in rows["train"].to_dict("records")} if len(rows["train"]) else {}
    return with_status(score_rows(rows, names))


def scores_caption(scores: pd.DataFrame, profile: str) -> str:
    """Where :func:`chapter_scores` was measured."""
    r0 = scores.iloc[0]
    return (f"measured here: profile `{profile}`, device `{r0.device}`, test set `{r0.dataset}` "
            f"({int(r0.images)} image(s); the embedded photos are not comparable with the paper's BSD200), "
            f"sigma {r0.sigma:g}")


def scores_table(scores: pd.DataFrame) -> pd.DataFrame:
    """:func:`chapter_scores` with the columns the chapter shows, named for reading."""
    cols = ["method", "seed", "protocol", "status", "psnr", "ssim", "params", "train_iterations", "train_seconds",
            "seconds_per_image"]
    out = scores[cols].rename(columns={"psnr": "PSNR", "ssim": "SSIM", "train_iterations": "iterations",
                                       "train_seconds": "train seconds", "seconds_per_image": "s/image"})
    out["status"] = out.status.fillna("baseline")
    return out


def training_histories(rows: dict) -> dict:
    """``{seed: history.csv}`` of each derived network's training (the plan's train items)."""
    tr = rows["train"]
    return {int(r.seed): pd.read_csv(Path(r.folder) / "history.csv")
            for r in tr[tr.folder.notna()].itertuples()} if len(tr) else {}


def gain(scores: pd.DataFrame) -> dict:
    """The networks against the noisy input (standard protocol): mean PSNR/SSIM over the seeds whose
    training is scored (:func:`hinas.book.compare.with_status`) with their seed spread, the noisy
    input's PSNR, the verdict of :func:`hinas.eval.stats.compare` (None when no run is scored), and the runs left out."""
    st = scores[scores.protocol == "standard"]
    net, kept = st[st.method != NOISY_INPUT], scored(st[st.method != NOISY_INPUT])
    noisy = float(st[st.method == NOISY_INPUT].psnr.iloc[0])
    spread = seed_spread(kept)
    return {"psnr": float(kept.psnr.mean()) if len(kept) else float("nan"), "spread": spread,
            "ssim": float(kept.ssim.mean()) if len(kept) else float("nan"),
            "ssim_spread": seed_spread(kept, "ssim"), "noisy": noisy, "sigma": float(scores.iloc[0].sigma),
            "seeds": sorted(kept.seed.unique().tolist()), "left_out": unscored_lines(net),
            "statuses": sorted(set(net.status.dropna()) - {TRAINED}) if "status" in net else [],
            "verdict": compare(kept.psnr.mean(), spread, noisy, None) if len(kept) else None}


def gain_reading(g: dict, seeds) -> str:
    """The sentences on :func:`gain`: which runs trained, and did the trained networks learn to denoise?"""
    left = "".join(f"\n* {line}" for line in g["left_out"])
    if g["verdict"] is None:
        return ("**No network of this chapter is scored**: every training run failed, so there is no result "
                "to compare with the noisy input or the paper:" + left)
    text = (f"Standard protocol, mean over the scored seeds {g['seeds']}: **{fmt_mean_std(g['psnr'], g['spread'])} dB** "
            f"(SSIM {fmt_mean_std(g['ssim'], g['ssim_spread'], 4)}) against **{g['noisy']:.2f} dB** for the noisy "
            "input: " + {"ahead": f"the trained network gains {g['psnr'] - g['noisy']:.2f} dB over its input.",
                         "tie": "**no gain larger than the seed spread: the network has not learned to denoise at "
                                "this budget.**",
                         "behind": "**the network is worse than its input: training failed at this budget.**"}[g["verdict"]])
    return text + (f" Left out (seeds {sorted(set(seeds) - set(g['seeds']))}):" + left if g["left_out"] else "")


def glance_rows(alpha: dict, g: dict) -> list:
    """Chapter 4's headline numbers for the intro (:func:`hinas.book.glance.record_glance`)."""
    return [{"what": "search: largest |alpha - 1/7| at the last epoch", "measured": f"{alpha['drift']:.4f}",
             "published": "–", "chapter": "4"},
            {"what": f"HiNAS, searched and trained (sigma {g['sigma']:g}, standard)",
             "measured": (f"{fmt_mean_std(g['psnr'], g['spread'])} dB" if g["verdict"] is not None else
                          f"no result: {' and '.join(g['statuses'])} (chapter 4)"),
             "published": "26.81 dB (BSD200)", "chapter": "4"},
            {"what": f"noisy input (sigma {g['sigma']:g}, standard)", "measured": f"{g['noisy']:.2f} dB",
             "published": "–", "chapter": "4"}]
