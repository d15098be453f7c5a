"""Chapter 5's reading of the ablation tables, from its plan (``hinas/plans/ablations.yaml``, read
with :func:`hinas.book.plans.table_rows` and :func:`~hinas.book.plans.search_rows`): the
measurement setup, the noisy-input floor, the paper's orderings of the rows (:data:`ORDERINGS`)
set against ours by the tie rule, the Eq. 5/Eq. 6 cost table, and the chapter's summary of all
orderings. Tables are DataFrames for :func:`hinas.book.tables.show`; readings are Markdown
sentences computed from the numbers."""

from __future__ import annotations

import pandas as pd

from hinas.book.compare import NOISY_INPUT, ordering_vs_paper
from hinas.book.tables import fmt_mean_std, mean_std, ours_vs_published, show, tidy_table

FULL = "HiNAS, LWAS + ResL"  # Table 1's full HiNAS row, whose seed spread stands in for single-seed tables

# The comparisons the paper's ablation tables make, as (key column, [(a, b): a should beat b]).
ORDERINGS = {
    "Table 1": ("setting", [(FULL, "HiNAS, neither"), ("HiNAS, LWAS", "HiNAS, neither"),
                            ("HiNAS, ResL", "HiNAS, neither"), (FULL, "RSWS"), ("HiNAS, neither", "RSWS")]),
    "Table 3": ("method", [("HiNAS-ws", "HiNAS-w40"), ("HiNAS-ws", "HiNAS-wm")]),
    "Table 4": ("method", [("HiNAS** (MSE + lssim)", "HiNAS* (MSE)")]),
    "Table 6": ("method", [("HiNAS", "HiNAS, R1"), ("HiNAS", "HiNAS, R2")]),
}
ORDERING_TITLE = "**Ordering, ours against the paper's** (read with the tie rule stated at the top of this chapter):"


def setting_label(method, lwas, residual) -> str:
    """Table 1's row label: ``'RSWS'``, or the method with the ingredients switched on."""
    if str(method).startswith("RSWS"):
        return "RSWS"
    parts = [n for n, on in (("LWAS", lwas), ("ResL", residual)) if on]
    return f"{method}, " + (" + ".join(parts) if parts else "neither")


def with_settings(df: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 with the ``setting`` column of :func:`setting_label` (ours are labelled by the plan)."""
    return df.assign(setting=[setting_label(m, l, r) for m, l, r in zip(df.method, df.lwas, df.residual)])


FLOOR = "noisy-ablations-dn50"  # the plan's noisy input, on the ablations' test images


def _row_seeds(plan, table: str, label: str) -> list:
    """The seeds at which ``label`` of ``table`` is an item of ``plan``."""
    from hinas.book.plans import table_items

    return [seed for row, seed in table_items(plan, table).values() if row == label]


def setup_note(plan, device: str) -> str:
    """The chapter's measurement setup, read from its plan: the seeds of each table, the noise
    level, the test images and the ablations' training length."""
    from hinas.book.plans import item_config
    from hinas.campaign.options import RSWS_SAMPLES

    first = plan.tables["Table 1"]["seeds"][0]
    ev = plan.item(FLOOR).options
    train = item_config(plan, f"train-full-s{first}", device, None)
    return (f"Profile `{plan.profile}`, device `{device}`, sigma {ev['sigma']:g}; seeds: Table 1's full row "
            f"{_row_seeds(plan, 'Table 1', FULL)}, its other rows {_row_seeds(plan, 'Table 1', 'RSWS')}, "
            f"Tables 3, 4, 6 and 8 {plan.tables['Table 3']['seeds']}; test images per evaluation: "
            f"{ev.get('limit') or 'all'}, central crop {ev.get('crop') or 'none'}; every ablation network trains "
            f"{train.iterations:,} iterations at lr {train.train_lr:g}; RSWS ranks "
            f"N = {plan.item(f'rsws-s{first}').options.get('samples', RSWS_SAMPLES)} architectures (published: N = 30).")


def noisy_floor(df: pd.DataFrame) -> float:
    """The noisy input's PSNR under the standard protocol in a table with its floor row."""
    return float(df[(df.protocol == "standard") & (df.method == NOISY_INPUT)].psnr.iloc[0])


def provenance(df: pd.DataFrame) -> str:
    """Where and how a table (with its floor row) was measured."""
    r = df[df.method != NOISY_INPUT].iloc[0]
    return (f"measured: profile `{r.profile}`, device `{r.device}`, test set `{r.dataset}` "
            f"({int(r.images)} image(s)), sigma {r.sigma:g}, protocol `standard`, "
            f"{int(r.train_iterations):,} training iterations per network, "
            f"seeds {sorted(int(s) for s in df.seed.dropna().unique())}")


def committed_view(plan, folder, repo) -> list:
    """What chapter 5 shows of a committed run of its plan at a larger profile (``folder``, e.g.
    ``results/plans-gpu/ablations``): each score table as the book shows a plan's table
    (:func:`hinas.book.campaigns.table_view`, beside the noisy input), or one line saying none is
    committed."""
    from pathlib import Path

    from IPython.display import Markdown

    from hinas.book.campaigns import table_view

    where = Path(folder)
    views = [table_view(plan, where, table, repo, floor=FLOOR) for table in plan.tables]
    if not any(len(v) > 1 for v in views):  # a table with no result is one line saying so
        rel = where.relative_to(repo) if where.is_relative_to(repo) else where
        return [Markdown(f"**No `{plan.profile}` run of this plan is committed yet** (`{rel}` holds no "
                         "finished evaluation): every number below was measured in this build.")]
    return [v for view in views for v in view]


def standard_summary(df: pd.DataFrame, key: str = "method") -> pd.DataFrame:
    """:func:`mean_std` over seeds of each ``key`` under the standard protocol (the floor row left out)."""
    return mean_std(df[(df.protocol == "standard") & (df.method != NOISY_INPUT)], [key])


def full_spread(table1_summary: pd.DataFrame) -> float:
    """The seed spread of Table 1's full HiNAS row (NaN with one seed): the margin single-seed
    tables are read with."""
    return float(table1_summary.set_index("setting").psnr_std.get(FULL, float("nan")))


def ordering(table: str, summary: pd.DataFrame, published: pd.DataFrame, *, spread, floor) -> pd.DataFrame:
    """:func:`ordering_vs_paper` over the comparisons of ``table`` (:data:`ORDERINGS`)."""
    key, pairs = ORDERINGS[table]
    return ordering_vs_paper(summary, published, pairs, key=key, spread=spread, floor=floor)


def ordering_view(o: pd.DataFrame) -> list:
    """What a notebook displays for an :func:`ordering` table: its title and the table (nothing if empty)."""
    from IPython.display import Markdown

    return [Markdown(ORDERING_TITLE), show(o)] if len(o) else []


def widths_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Table 3, ours: mean ± std per method with its parameters and channels per node."""
    out = ours_vs_published(rows, None, ["method"])
    sizes = rows[rows.method != NOISY_INPUT].groupby("method", sort=False)[["params", "node_channels"]].first()
    return out.merge(tidy_table(sizes.reset_index()), on="method", how="left").rename(
        columns={"params": "params (ours)", "node_channels": "channels per node"})


def cell_sharing_table(t8: pd.DataFrame, mem: dict) -> pd.DataFrame:
    """Table 8, ours: per cell-sharing mode (the searches of :func:`hinas.book.plans.search_rows`,
    labelled eq5/eq6) the search time over seeds and V PSNR, and one search step's peak memory,
    time and cell evaluations (the plan's memory benchmark)."""
    m = t8.groupby("label").agg(search_seconds=("seconds", "mean"), search_seconds_std=("seconds", "std"),
                                val_psnr=("val_psnr", "mean"), seeds=("seed", "nunique")).reset_index()
    m["search seconds"] = [fmt_mean_std(a, b, 1) for a, b in zip(m.search_seconds, m.search_seconds_std)]
    m["peak MiB (one step)"] = [mem[mode]["peak_bytes"] / 2**20 for mode in m.label]
    m["step seconds"] = [mem[mode]["step_seconds"] for mode in m.label]
    m["cell evaluations"] = [mem[mode]["cell_evaluations"] for mode in m.label]
    return m[["label", "search seconds", "val_psnr", "peak MiB (one step)", "step seconds", "cell evaluations",
              "seeds"]].rename(columns={"label": "cell sharing", "val_psnr": "V PSNR"})


def cell_sharing_caption(t8: pd.DataFrame, mem: dict, profile: str) -> str:
    """Where :func:`cell_sharing_table` was measured and the benchmark supernet's size."""
    c = mem["config"]
    return (f"measured here: profile `{profile}`, device `{t8.device.iloc[0]}`, search time over seeds "
            f"{sorted(int(s) for s in t8.seed.unique())}; memory benchmark: batch {c.get('batch')}, "
            f"{c.get('size')}x{c.get('size')} crops, {c.get('layers')} layers, {c.get('levels')} levels, f = {c.get('f')}")


def cell_sharing_ratios(t8: pd.DataFrame, mem: dict) -> str:
    """Eq. 6 over Eq. 5, measured (memory, step time, cell evaluations, search time), beside the paper's."""
    search = t8.groupby("label").seconds.mean()
    return (f"Eq. 6 / Eq. 5 (measured): memory x{mem['memory_ratio']:.2f}, step time x{mem['time_ratio']:.2f}, "
            f"cell evaluations x{mem['analytic_ratio']:.2f}, search time x{search['eq6'] / search['eq5']:.2f}. "
            "Published: search time x3.6 (3.6 against 1.0 GPU-hours).")


def ordering_outcomes(orderings: dict) -> dict:
    """All :func:`ordering` tables together (``all``) and split by outcome: ``agree``, ``tie``
    (cannot tell), ``not learned`` and ``disagree``."""
    frames = [o.assign(table=k) for k, o in orderings.items() if len(o)]
    allo = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["comparison", "paper (dB)", "ours (dB)", "ours", "agrees with the paper", "table"])
    col = allo["agrees with the paper"]
    return {"all": allo, "agree": allo[col == "yes"], "tie": allo[col == "cannot tell (tie)"],
            "not learned": allo[col == "cannot tell (not learned)"], "disagree": allo[col == "no"]}


def _db(text: str) -> str:
    """'+0.11' -> '+0.11 dB'; '+0.00 (SSIM +0.0137)' -> '+0.00 dB, SSIM +0.0137'."""
    head, _, rest = str(text).partition(" (")
    return f"{head} dB" + (f", {rest.rstrip(')')}" if rest else "")


def orderings_reading(orderings: dict, t1: pd.DataFrame, spread: float, n_seeds: int) -> str:
    """Chapter 5's summary of the orderings: how many agree, tie, disagree or involve a network
    that did not learn; the disagreements and the reason we can name; the paper's differences
    against our seed spread (``t1``: Table 1 with settings, for the full row's seeds)."""
    out = ordering_outcomes(orderings)
    allo, dis, ties, unlearned = out["all"], out["disagree"], out["tie"], out["not learned"]
    lines = [f"* Of {len(allo)} comparisons the paper makes, our runs agree with **{len(out['agree'])}**, cannot tell "
             f"**{len(ties)}** (a tie by the rule above) and disagree with **{len(dis)}**"
             + (f"; **{len(unlearned)}** involve a network that did not clear the noisy input and say nothing."
                if len(unlearned) else ".")]
    if len(dis):
        lines.append("* Disagreements: " + "; ".join(f"{r.table}, {r.comparison} (paper {_db(r['paper (dB)'])}, "
                                                     f"ours {r['ours (dB)']} dB)" for _, r in dis.iterrows()) +
                     f". The reason we can name is the **schedule and data**: {n_seeds} seed(s), searches of a few "
                     "epochs and trainings of a few hundred iterations on the embedded photos, against the paper's "
                     "100-epoch searches, 400k-600k training iterations on BSD500 and three seeds; no disagreement here "
                     "is evidence against the paper until it survives the `paper` profile.")
    paper_diffs = allo["paper (dB)"].str.split(" ").str[0].astype(float).abs()
    full_seeds = t1[(t1.protocol == "standard") & (t1.setting == FULL)].sort_values("seed")
    if len(ties) or len(unlearned):
        lines.append(f"* The paper's own differences are {paper_diffs.min():.2f}-{paper_diffs.max():.2f} dB; "
                     + (f"our seed spread, which a difference must exceed, is {spread:.2f} dB (the full HiNAS row: "
                        + ", ".join(f"{p:.2f} dB (seed {int(s)})" for s, p in zip(full_seeds.seed, full_seeds.psnr))
                        + "), so differences of the paper's size cannot show at this budget."
                        if spread == spread else "with one seed there is no spread to compare them with."))
    lines.append("* What is checked regardless of the schedule: every ablation runs end to end with the code a GPU run "
                 "would use, and the Eq. 5/Eq. 6 cost ratio (5.5) is a property of the supernet, measured meaningfully "
                 "even at small size.")
    return "\n".join(lines)


def glance_rows(orderings: dict, mem: dict, profile: str | None = None) -> list:
    """Chapter 5's headline numbers for the intro (:func:`hinas.book.glance.record_glance`), and
    with ``profile`` its rows of the intro's claims table (:mod:`hinas.book.claims`)."""
    from hinas.book import claims

    out = ordering_outcomes(orderings)
    claim_rows = [] if profile is None else [
        claims.ablation_claim(len(out["agree"]), len(out["tie"]), len(out["disagree"]), len(out["not learned"]),
                              profile, "5"),
        claims.memory_claim(mem["memory_ratio"], f"one search step of the `{profile}` supernet, 5.5", "5")]
    counts = (f"{len(out['agree'])} agree, {len(out['tie'])} ties, {len(out['disagree'])} disagree, "
              f"{len(out['not learned'])} not learned (of {len(out['all'])})")
    return [{"what": "ablation orderings (Tables 1, 3, 4, 6) agreeing with the paper", "measured": counts,
             "published": "–", "chapter": "5"},
            {"what": "Eq. 6 / Eq. 5 memory of one search step", "measured": f"x{mem['memory_ratio']:.2f}",
             "published": "about x3 (Sec. 3.2)", "chapter": "5"}] + claim_rows
