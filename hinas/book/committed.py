"""Results committed under ``results/``, as the book shows them: the campaign folders written by
``hinas campaign run`` (``results/<plan>/``, on a GPU or the CPU), full-test-set baselines
(``results/baselines/``, ``hinas eval bm3d|noisy --save``) and CPU evaluations of committed
networks (``results/cpu-eval/``, ``hinas eval --weights --save``).

Everything here reads files; nothing is computed at build time, so the book shows the committed
numbers even where the build has no datasets. The readings (:func:`denoise_reading`, :func:`bench_reading`)
are sentences computed from those numbers with the book's tie rule, never written in advance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from hinas.book import compare, curves, published, tables
from hinas.book.campaigns import (campaign_folders, campaign_rows, evaluation_per_image,  # noqa: F401 (the
                                  not_done, plan_progress, plans_of, results_root,  # chapters read them as
                                  table_views, tabled_items)  # committed.*)
from hinas.book.settings import PROTOCOLS
from hinas.campaign import read_json
from hinas.campaign.plan import renamed_path
from hinas.eval import stats
from hinas.safeio import is_finite_number

# the paper's claims for Eq. 5 against Eq. 6 (Sec. 3.2 and Table 8): memory "by a factor of 3",
# search 3.6 vs 1.0 GTX 1080Ti GPU-hours
PAPER_EQ6_OVER_EQ5 = {"memory": 3.0, "search time": 3.6}


def search_movements(repo) -> dict:
    """``{'<results>/<search item>': movement}`` of every committed search: how far its alpha and
    beta moved (from its summary, else from its alpha.csv/beta.csv; :mod:`hinas.engine.movement`)."""
    from hinas.engine.movement import movement_from_csv

    out = {}
    searches = campaign_rows(repo, "search")
    for r in searches.itertuples() if len(searches) else ():
        known = isinstance(getattr(r, "moved", None), bool)
        out[f"{r.results}/{r.item}"] = ({"moved": r.moved, "alpha_max_dev": r.alpha_max_dev,
                                         "beta_max_change": r.beta_max_change} if known
                                        else movement_from_csv(Path(repo) / r.results / r.item))
    return out


def movement_label(movement: Optional[dict]) -> str:
    """``searched`` or ``not searched``, with the two numbers behind the word."""
    from hinas.engine.movement import MOVED_THRESHOLD

    if not movement:
        return "unknown (no alpha/beta record)"
    return (("searched" if movement["moved"] else "not searched")
            + f" (largest |alpha-1/7| {movement['alpha_max_dev']:.4f}, beta change "
              f"{movement['beta_max_change']:.4f}; moved means >= {MOVED_THRESHOLD})")


def unsearched_networks(repo) -> dict:
    """``{'<results>/<train item>': search item}``: committed trainings whose genotype came from a
    search that did not move, i.e. networks of a genotype that was not searched."""
    moves = search_movements(repo)
    out = {}
    for d in campaign_folders(repo):
        where = str(d.relative_to(repo))
        for plan in plans_of(d):
            for it in plan.items:
                m = moves.get(f"{where}/{it.genotype_from}") if it.kind == "train" and it.genotype_from else None
                if m is not None and not m["moved"]:
                    out[f"{where}/{it.name}"] = it.genotype_from
    return out


def per_image_scores(repo, sigma: float, dataset: str = "BSDS500-test", protocol: str = "standard") -> dict:
    """``{method: [{name, psnr, ssim}, ...]}`` of every committed fp32 evaluation of the whole
    ``dataset`` at ``sigma`` (the campaign's, the CPU ones of committed weights, BM3D, the noisy
    input), labelled as :func:`denoise_table` labels them; the first found per method."""
    unsearched = unsearched_networks(repo)
    out: dict = {}
    ev, tabled = campaign_rows(repo, "eval"), tabled_items(repo)
    for r in ev.itertuples() if len(ev) else ():
        if f"{r.results}/{r.item}" in tabled:
            continue
        per_image = evaluation_per_image(repo, r, dataset, protocol, sigma)
        if per_image:
            _keep_most(out, method_label(r.model, f"{r.results}/{r.network}", unsearched), per_image)
    trained = campaign_rows(repo, "train")
    nets = {(Path(repo) / r.results / r.item).resolve(): f"{r.results}/{r.item}"
            for r in trained.itertuples()} if len(trained) else {}
    for folder in ("cpu-eval", "baselines"):
        for p in sorted((results_root(repo) / folder).glob("*.json")):
            d = _saved(p)
            if (not d or d.get("dataset") != dataset or d.get("sigma") != sigma or d.get("protocol") != protocol
                    or d.get("embedded") or not d.get("per_image")):
                continue
            run = Path(renamed_path(d.get("run", "")))
            net = nets.get((run if run.is_absolute() else Path(repo) / run).resolve()) if d.get("run") else None
            model = d.get("model") if folder == "cpu-eval" else d.get("method")
            if folder == "cpu-eval" and net is None:
                continue
            _keep_most(out, method_label(model, net, unsearched), d["per_image"])
    return out


def _keep_most(out: dict, method: str, per_image: list) -> None:
    if len(per_image) > len(out.get(method, [])):
        out[method] = per_image


def _saved(path: Path) -> Optional[dict]:
    """A saved ``hinas eval`` result, or None for anything else."""
    d = read_json(path)
    return d if isinstance(d, dict) and "psnr" in d else None


def denoise_rows(repo, sigma: float, dataset: str = "BSDS500-test") -> pd.DataFrame:
    """Every committed denoising score on ``dataset`` at ``sigma`` (whole test set only): the
    campaign's networks (evaluated on the GPU, or on the CPU from their committed weights where
    the campaign has not evaluated them yet), BM3D and the noisy input."""
    rows = []
    ev = campaign_rows(repo, "eval")
    trained = campaign_rows(repo, "train")
    if len(ev):  # the items of a plan's own tables are read there (campaigns.table_views)
        ev = ev[(ev.task == "denoise") & (ev.dataset == dataset) & (ev.sigma == sigma)
                & ~(ev.results + "/" + ev["item"]).isin(tabled_items(repo))]
        for r in ev.itertuples():
            rows.append({"model": r.model, "network": f"{r.results}/{r.network}", "seed": r.seed, "params": r.params,
                         "train_iterations": r.train_iterations, "paper_iterations": r.paper_iterations,
                         "best_iteration": r.best_iteration, "protocol": r.protocol, "precision": r.precision,
                         "images": r.images, "psnr": r.psnr, "ssim": r.ssim, "evaluated on": r.device,
                         "trained on": r.device, "training": r.training, "training_evidence": r.training_evidence})
    seen = {(r["network"], r["protocol"], r["precision"]) for r in rows}
    nets = {(Path(repo) / r.results / r.item).resolve(): r for r in trained.itertuples()} if len(trained) else {}
    for p in sorted((results_root(repo) / "cpu-eval").glob("*.json")):
        d = _saved(p)
        if not d or d.get("dataset") != dataset or d.get("sigma") != sigma or d.get("embedded"):
            continue
        run = Path(renamed_path(d.get("run", "")))  # as given to `hinas eval --weights`, from the repository root
        net = nets.get((run if run.is_absolute() else Path(repo) / run).resolve())
        if net is None or (f"{net.results}/{net.item}", d["protocol"], "fp32") in seen:
            continue
        rows.append({"model": d.get("model"), "network": f"{net.results}/{net.item}", "seed": net.seed,
                     "params": d.get("params"), "train_iterations": net.iterations,
                     "paper_iterations": net.paper_iterations, "best_iteration": net.best_iteration,
                     "protocol": d["protocol"], "precision": "fp32",
                     "images": d.get("images"), "psnr": d["psnr"], "ssim": d["ssim"],
                     "evaluated on": "cpu (committed weights)", "trained on": net.device,
                     "training": net.training, "training_evidence": net.training_evidence})
    for p in sorted((results_root(repo) / "baselines").glob("*.json")):
        d = _saved(p)
        if (not d or d.get("method") not in ("bm3d", "noisy") or d.get("dataset") != dataset
                or d.get("sigma") != sigma or d.get("embedded")):
            continue
        rows.append({"model": d["method"], "network": None, "seed": None, "params": None, "train_iterations": None,
                     "paper_iterations": None, "best_iteration": None, "protocol": d["protocol"], "precision": "fp32",
                     "images": d.get("images"), "psnr": d["psnr"], "ssim": d["ssim"],
                     "evaluated on": d.get("device"), "trained on": None, "training": None,
                     "training_evidence": None})
    # a score on the first N images only (``--limit``) is not a score on the test set: keep the
    # rows that cover as many images as the most complete one
    full = max((r["images"] or 0 for r in rows), default=0)
    return pd.DataFrame([r for r in rows if (r["images"] or 0) == full])


METHOD_LABELS = {"hinas": "HiNAS (ours)", "dncnn": "DnCNN (ours, same time budget)", "bm3d": "BM3D",
                 "noisy": compare.NOISY_INPUT}
UNSEARCHED = "HiNAS (ours; genotype not searched)"  # its search's alpha/beta did not move


def method_label(model, network=None, unsearched: Optional[dict] = None) -> str:
    """How a committed row's method is named: a HiNAS network whose search did not move is not
    called searched (:func:`unsearched_networks`)."""
    if model == "hinas" and network and network in (unsearched or {}):
        return UNSEARCHED
    return METHOD_LABELS.get(model, model)


DEVICES = "trained / evaluated on"  # a column of denoise_table


def _devices(trained, evaluated) -> str:
    """Where a row's network trained and where it was scored, as one cell ('H100 / cpu')."""
    t = tables.short_device(trained) if isinstance(trained, str) else "–"
    return f"{t} / {tables.short_device(evaluated) if isinstance(evaluated, str) else '–'}"


def denoise_table(rows: pd.DataFrame, sigma: float, unsearched: Optional[dict] = None) -> pd.DataFrame:
    """:func:`denoise_rows` summarised as chapter 6 summarises its own runs
    (:func:`hinas.book.tables.score_summary`: mean ± std over the scored seeds per method, protocol
    and precision; a run that diverged or did not learn is left out and counted), beside the paper's
    Table 10 at the same sigma (its HiNAS and BM3D rows); HiNAS networks of an unsearched genotype
    (``unsearched``, :func:`unsearched_networks`) are labelled so."""
    if not len(rows):
        return pd.DataFrame()
    s = tables.score_summary(rows.assign(method=[method_label(m, n, unsearched)
                                                 for m, n in zip(rows.model, rows.network)]))
    out = pd.DataFrame({"method": s.method, "protocol": s.protocol, "precision": s.precision, "PSNR": s.PSNR,
                        "SSIM": s.SSIM, "seeds": s.seed_list.replace("", "–").fillna("–"), "params": s.params,
                        "iterations": s.iterations,
                        tables.SHARE_COLUMN: [tables.training_share(i, p) for i, p in zip(s.iterations, s.paper_iterations)],
                        DEVICES: [_devices(t, e) for t, e in zip(s.trained_on, s.evaluated_on)]})
    if s.left_out.any():
        out["runs left out"] = s.left_out
    pub = tables.published_rows("table10")
    pub = pub[(pub.sigma == sigma) & pub.method.isin(["HiNAS", "BM3D"])]
    out = pd.concat([out, pd.DataFrame([{
        "method": f"{p.method} (published, Table 10)", "protocol": "as published", "precision": "–",
        "PSNR": f"{p.psnr:.2f}", "SSIM": f"{p.ssim:.4f}", "seeds": "–", "params": None, "iterations": None,
        tables.SHARE_COLUMN: "–", DEVICES: "–"} for p in pub.itertuples()])], ignore_index=True)
    out[["params", "iterations"]] = out[["params", "iterations"]].apply(pd.to_numeric)  # counts, not objects
    order = list(METHOD_LABELS.values())
    order.insert(1, UNSEARCHED)
    return out.sort_values("method", key=lambda m: m.map(lambda x: order.index(x) if x in order else len(order)),
                           kind="stable", ignore_index=True)


def _mean(rows: pd.DataFrame, model: str, protocol: str, precision: str = "fp32"):
    g = rows[(rows.model == model) & (rows.protocol == protocol) & (rows.precision == precision)]
    if not len(g):
        return None
    def first(col):  # a plain float (NaN when absent), whatever the column's dtype
        return float(pd.to_numeric(g[col], errors="coerce").iloc[0]) if col in g.columns else float("nan")

    return {"psnr": float(g.psnr.mean()), "std": float(g.psnr.std()) if len(g) > 1 else None,
            "seeds": g.seed.nunique(), "params": first("params"), "iterations": first("train_iterations"),
            "paper_iterations": first("paper_iterations"), "best_iteration": first("best_iteration")}


def _paired(scores: Optional[dict], model: str) -> Optional[dict]:
    """HiNAS (searched or not) against ``model`` on the same images, from :func:`per_image_scores`."""
    if not scores:
        return None
    ours = next((v for k, v in scores.items() if k in (METHOD_LABELS["hinas"], UNSEARCHED)), None)
    theirs = scores.get(METHOD_LABELS.get(model, model))
    return stats.paired_difference(ours, theirs) if ours and theirs else None


def denoise_reading(rows: pd.DataFrame, sigma: float, searches: Optional[pd.DataFrame] = None,
                    repo=None, scores: Optional[dict] = None) -> list[str]:
    """Sentences computed from :func:`denoise_rows`: where HiNAS stands against the paper (the
    reference protocol is the released code's, which produced Table 10), whether its training was
    still improving (from its validation history when ``repo`` is given), against DnCNN with the
    same budget, BM3D and the noisy input (standard protocol; paired on the same images when their
    per-image ``scores`` are given, :func:`per_image_scores`), and what bf16 changes."""
    if not len(rows):
        return []
    pub = tables.published_rows("table10")
    paper = pub[(pub.sigma == sigma) & (pub.method == "HiNAS")].psnr
    out = []
    ours_ref = _mean(rows, "hinas", "hinas-reference")
    if ours_ref and len(paper):
        diff = ours_ref["psnr"] - float(paper.iloc[0])
        why = f"it trained {tables.training_length(ours_ref['iterations'], ours_ref['paper_iterations'])}"
        if searches is not None and len(searches):
            s = searches.iloc[0]
            why += f", on a genotype searched for {int(s.epochs)} of the paper's {int(s.paper_epochs)} epochs"
        out.append(f"**Against the paper** (protocol `hinas-reference`: the released code's evaluation, overlapping "
                   "64x64 patches at stride 48 with fresh noise per patch; the paper says only \"adjacent patches\", so "
                   "that this is how Table 10 was scored is our reading of the code, not the paper's statement): "
                   f"HiNAS scores {ours_ref['psnr']:.2f} dB, **{abs(diff):.2f} dB "
                   f"{'below' if diff < 0 else 'above'}** the published {float(paper.iloc[0]):.2f} dB "
                   f"({ours_ref['seeds']} seed{'s' if ours_ref['seeds'] != 1 else ''}). Its schedule: {why}.")
        best, last = ours_ref["best_iteration"], ours_ref["iterations"]
        nets = rows[(rows.model == "hinas") & rows.network.notna()].network if "network" in rows else []
        trend = (curves.validation_trend(Path(repo) / nets.iloc[0] / "history.csv")
                 if repo is not None and len(nets) else None)
        if trend is not None:
            out.append(f"Its training: {curves.trend_reading(trend)}")
        elif is_finite_number(best) and is_finite_number(last):
            still = best >= 0.95 * last
            out.append(f"Its best validation score came at iteration {int(best):,} of {int(last):,}"
                       + (" (in the last 5% of its training): it was **still improving** when its time budget "
                          "ended." if still else ": it had stopped improving well before its budget ended."))
    elif len(paper):
        out.append(f"**Against the paper**: missing; no HiNAS network has been evaluated under `hinas-reference` "
                   f"at sigma {sigma:g} yet (published: {float(paper.iloc[0]):.2f} dB).")
    ours = _mean(rows, "hinas", "standard")
    for other, what, short in (("dncnn", "DnCNN trained with the same time budget", "DnCNN"), ("bm3d", "BM3D", "BM3D"),
                               ("noisy", "the noisy input", "the noisy input")):
        theirs = _mean(rows, other, "standard")
        if ours is None or theirs is None:
            if ours is not None:
                out.append(f"**Against {what}** (protocol `standard`): missing; not evaluated on this test set yet.")
            continue
        diff = ours["psnr"] - theirs["psnr"]
        text = (f"**Against {what}** (protocol `standard`): HiNAS {ours['psnr']:.2f} dB, {short} "
                f"{theirs['psnr']:.2f} dB, a difference of {diff:+.2f} dB")
        paired = _paired(scores, other)
        if paired is not None:  # the same images: the paired rule, with the seed spread where measured
            spread = max((v for v in (ours["std"], theirs["std"]) if is_finite_number(v)), default=None)
            where = "over our seeds"
            if spread is None and other != "noisy":  # one training run a row: the paper's seed spread
                spread, where = published.seed_spread_db(sigma), "the paper's, Table 1; not measured here"
            verdict = stats.paired_verdict(paired, spread)
            call = (verdict if other in ("noisy", "bm3d") or ours["std"] is not None else
                    {"tie": stats.WITHIN_SEED, "ahead": "HiNAS ahead",
                     "behind": f"{short} ahead"}[verdict])
            text += (f" (standard error {paired['se']:.3f} dB over {paired['images']} paired images; HiNAS better "
                     f"on {paired['wins']}"
                     + (f"; seed spread {spread:.2f} dB, {where}" if is_finite_number(spread) else "")
                     + f"): **{call}** by the paired rule")
        else:
            verdict = stats.compare(ours["psnr"], ours["std"], theirs["psnr"], theirs["std"])
            single = ours["std"] is None and theirs["std"] is None
            if single and verdict == "tie" and other not in ("noisy", "bm3d"):
                verdict = stats.WITHIN_SEED
            text += f": **{verdict}** by the tie rule"
            if single:
                text += f" (single runs, no seed spread, so the margin is {stats.ONE_SEED_MARGIN_DB} dB)"
        if other == "dncnn":
            text += (f"; HiNAS has {ours['params'] / theirs['params']:.2f}x DnCNN's parameters "
                     f"({int(ours['params']):,} vs {int(theirs['params']):,}) and trained "
                     f"{int(ours['iterations']):,} iterations to DnCNN's {int(theirs['iterations']):,} "
                     f"in the same time")
        out.append(text + ".")
    bf = _mean(rows, "hinas", "standard", "bf16")
    if ours is not None and bf is not None:
        out.append(f"**bf16 inference** changes HiNAS's score by {bf['psnr'] - ours['psnr']:+.3f} dB "
                   "(standard protocol, same images and noise).")
    return out


def bench_reading(bench: pd.DataFrame) -> list[str]:
    """Eq. 6 over Eq. 5 (memory and step time of the supernet) on each committed device, beside
    the paper's factors."""
    out = []
    for r in bench.itertuples():
        out.append(f"On {r.device}, separate cells (Eq. 6) take **{r.memory_ratio:.2f}x** the memory and "
                   f"**{r.time_ratio:.2f}x** the step time of shared cells (Eq. 5) (cell evaluations: "
                   f"{r.analytic_ratio:.2f}x); the paper reports {PAPER_EQ6_OVER_EQ5['memory']:g}x memory and "
                   f"{PAPER_EQ6_OVER_EQ5['search time']:g}x search time (3.6 vs 1.0 GTX 1080Ti GPU-hours).")
    return out


# -- what the chapters show of the committed results ----------------------------------------

def _measured_here(device: str, profile: str, after: bool = True) -> str:
    return (f"Everything {'after this section' if after else 'below'} was measured in this build, on `{device}` "
            f"at profile `{profile}`")


def _items(names) -> str:
    return ", ".join(f"`{i}`" for i in names)


def search_table(searches: pd.DataFrame, movements: Optional[dict] = None) -> pd.DataFrame:
    """Searches (the campaign's rows, :func:`campaign_rows` ``'search'``: the committed ones, or a
    chapter plan's) as chapter 4 lists them, each labelled searched or not by how far its alpha and
    beta moved (``movements``: :func:`search_movements`; by default the rows' own)."""
    if movements is None:
        movements = {f"{r.get('results')}/{r['item']}": r for r in searches.to_dict("records")
                     if isinstance(r.get("moved"), bool)}
    return pd.DataFrame({
        "item": searches.item, "device": searches.device.map(tables.short_device), "profile": searches.profile,
        "seed": searches.seed,
        "epochs (of the paper's)": [f"{int(a)} of {int(b)}" for a, b in zip(searches.epochs, searches.paper_epochs)],
        "seconds": searches.seconds, "V PSNR": searches.val_psnr, "V SSIM": searches.val_ssim,
        "searched?": [movement_label(movements.get(f"{r}/{i}"))
                      for r, i in zip(searches.get("results", [None] * len(searches)), searches.item)]})


def train_table(trainings: pd.DataFrame) -> pd.DataFrame:
    """The committed trainings (:func:`campaign_rows` ``'train'``) as chapter 4 lists them."""
    t = trainings
    return pd.DataFrame({
        "item": t.item, "model": t.model, "sigma": t.sigma, "seed": t.seed, "params": t.params,
        "iterations": t.iterations,
        tables.SHARE_COLUMN: [tables.training_share(a, b) for a, b in zip(t.iterations, t.paper_iterations)],
        "it/s": t.iterations_per_second, "best at": t.best_iteration, "V PSNR": t.val_psnr, "V SSIM": t.val_ssim,
        "device": t.device.map(tables.short_device)})


def train_caption(source: str = "committed") -> str:
    """The caption of :func:`train_table` (``source``: whose trainings they are)."""
    return (f"**Trainings** ({source}; `best at`: the iteration of the best validation score; "
            f"{tables.training_share_note()})")


def searched_genotypes(searches: pd.DataFrame, movements: Optional[dict] = None) -> list:
    """``(caption, Genotype, item)`` of every committed search, in its rows' order; the caption of a
    search whose alpha and beta did not move (``movements``: :func:`search_movements`) says that
    its genotype was not searched."""
    from hinas.engine.movement import MOVED_THRESHOLD
    from hinas.space.genotype import Genotype

    out = []
    for r in searches.itertuples():
        caption = f"The genotype of `{r.item}` ({r.device}, seed {r.seed})"
        m = (movements or {}).get(f"{r.results}/{r.item}")
        if m is not None and not m["moved"]:
            caption += (f": **not searched**. Its alpha and beta did not move (largest |alpha - 1/7| "
                        f"{m['alpha_max_dev']:.4f}, largest beta change {m['beta_max_change']:.4f}, both below the "
                        f"gate of {MOVED_THRESHOLD}), so this is the decoding of the untrained starting point, "
                        "not a result of the search")
        out.append((caption + ":", Genotype.load(r.genotype), r.item))
    return out


def search_notes(repo, searches: pd.DataFrame, trainings: pd.DataFrame, device: str, profile: str) -> list[str]:
    """Chapter 4's sentences under the committed searches and trainings: none committed yet, or
    which search and training items are not finished, and where the rest of the chapter was measured."""
    if not len(searches) and not len(trainings):
        return ["**No paper-plan results committed yet**: `results/` holds no finished search or training of a "
                f"campaign. {_measured_here(device, profile, after=False)}."]
    left = not_done(repo)
    left = left[left.kind.isin(["search", "train"])] if len(left) else left
    notes = [f"**Not run yet** (no piece of the plan has reached them yet; the next ones continue it): "
             f"{_items(left.item)}."] if len(left) else []
    return notes + [f"{_measured_here(device, profile)}."]


def gpu_bench_table(repo) -> pd.DataFrame:
    """Eq. 6 over Eq. 5 ratios measured on a GPU: ``results/bench/supernet_memory*.json`` and the
    campaigns' ``bench`` items, CPU measurements left out."""
    rows = []
    for p in sorted((results_root(repo) / "bench").glob("supernet_memory*.json")):
        d = read_json(p, {})
        rows.append({"source": f"results/bench/{p.name}", "device": d.get("device"), "memory ratio": d.get("memory_ratio"),
                     "time ratio": d.get("time_ratio"), "analytic ratio": d.get("analytic_ratio")})
    for r in campaign_rows(repo, "bench").itertuples():
        rows.append({"source": f"{r.results}/{r.item}", "device": r.device, "memory ratio": r.memory_ratio,
                     "time ratio": r.time_ratio, "analytic ratio": r.analytic_ratio})
    return pd.DataFrame([r for r in rows if str(r["device"]).lower() not in ("cpu", "none")])


def denoise_sigmas(repo) -> list:
    """The noise levels of the committed denoising evaluations."""
    ev = campaign_rows(repo, "eval")
    return sorted(ev[ev.task == "denoise"].sigma.dropna().unique()) if len(ev) else []


def denoise_title(sigma: float) -> str:
    """The heading of chapter 6's committed table at ``sigma``."""
    return f"**BSD200, sigma {sigma:g}** (params: of the network; {tables.training_share_note()})"


def denoise_glance(rows: pd.DataFrame, sigma: float, unsearched: Optional[dict] = None) -> list[dict]:
    """The intro's glance rows for the committed HiNAS scores (fp32) at ``sigma``, one per protocol,
    beside the paper's Table 10; a network of a search that did not move is named so
    (:func:`method_label`)."""
    ours = rows[(rows.model == "hinas") & (rows.precision == "fp32")]
    pub = tables.published_rows("table10")
    pub_psnr = pub[(pub.method == "HiNAS") & (pub.sigma == sigma)].psnr
    out = []
    for prot in PROTOCOLS:
        o = ours[ours.protocol == prot]
        if len(o):
            method = method_label("hinas", o.iloc[0].network, unsearched)
            out.append({"chapter": "6 (paper plan, committed)", "what": f"{method} on BSD200 (sigma {sigma:g}, {prot} protocol, "
                        f"{tables.short_device(o.iloc[0]['trained on'])}, trained "
                        f"{tables.training_length(o.iloc[0].train_iterations, o.iloc[0].paper_iterations)})",
                        "measured": tables.fmt_mean_std(o.psnr.mean(), o.psnr.std() if len(o) > 1 else None) + " dB",
                        "published": (f"{pub_psnr.iloc[0]:.2f} dB" + ("" if prot == "hinas-reference" else
                                                                      " (under hinas-reference)")
                                      if len(pub_psnr) else "–")})
    return out


def denoise_notes(repo, sigmas, device: str, profile: str) -> list[str]:
    """Chapter 6's sentences under the committed tables: none committed yet, or which plan items
    are not finished, and where the rest of the chapter was measured."""
    if not len(sigmas):
        return ["**No paper-plan results committed yet**: `results/` holds no denoising evaluation of a campaign. "
                f"{_measured_here(device, profile, after=False)}."]
    left = not_done(repo)
    notes = [f"**Missing** (plan items not finished yet, so no number is shown for them): "
             f"{_items(left.item)}."] if len(left) else []
    return notes + [f"{_measured_here(device, profile)}, on the test images named there."]


def bicubic_table(repo, scale: int = 3) -> pd.DataFrame:
    """The committed bicubic baselines at ``scale`` (``results/baselines/bicubic_*_x<scale>_*.json``)
    beside the paper's bicubic row of Table 11 (x3); empty when none is committed."""
    rows = []
    for f in sorted((results_root(repo) / "baselines").glob(f"bicubic_*_x{scale}_*.json")):
        d = read_json(f)
        rows.append({"dataset": d["dataset"], "protocol": d["protocol"], "images": d["images"],
                     "PSNR": d["psnr"], "SSIM": d["ssim"]})
    if not rows:
        return pd.DataFrame()
    p = tables.published_rows("table11")
    pub = p[p.method == "bicubic"][["dataset", "psnr", "ssim"]].rename(columns={"psnr": "PSNR (paper)",
                                                                                  "ssim": "SSIM (paper)"})
    return pd.DataFrame(rows).merge(pub, on="dataset", how="left")
