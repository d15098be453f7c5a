"""Chapter 6's reading of Table 10 measured here (the plan ``hinas/plans/sota.yaml``, which builds on
chapter 4's ``search.yaml``; :func:`sota_table`): one row per
(method, protocol) with the mean and spread over seeds, where it was measured, and the sentences
the chapter draws from it with the tie rule (:func:`hinas.eval.stats.compare`) against the
noisy input, DnCNN, BM3D and the paper. Tables are DataFrames for :func:`hinas.book.tables.show`."""

from __future__ import annotations

import pandas as pd

from hinas.book.compare import NOISY_INPUT
from hinas.eval.stats import ONE_SEED_MARGIN_DB, WITHIN_SEED, compare
from hinas.book.plans import score_rows, seeds as plan_seeds
from hinas.book.settings import PROTOCOLS
from hinas.book.tables import fmt_mean_std

HINAS, DNCNN = "HiNAS (ours)", "DnCNN (same budget)"  # the network rows of sota_table
METHODS = {"hinas": HINAS, "dncnn": DNCNN}  # a trained network's row by its model
WORDS = {"ahead": "above", "behind": "below", "tie": "level with (a tie)"}  # a verdict as a position


def setup_note(plan, device: str, sigma: float) -> str:
    """The chapter's measurement setup, read from its plan: test images, crops, and where BM3D was run."""
    ev = next(it for it in plan.all_items() if it.kind == "eval").options
    bm3d = next(it for it in plan.all_items() if it.kind == "baseline" and it.options["method"] == "bm3d").options
    protocols = bm3d.get("protocols") or ["standard"]
    return (f"Profile `{plan.profile}`, device `{device}`, seeds {plan_seeds(plan)}, sigma {sigma:g}; test images "
            f"per evaluation: {ev.get('limit') or 'all'}, central crop {ev.get('crop') or 'none'}; "
            f"BM3D on {bm3d.get('limit') or 'all'} image(s), "
            + ("both protocols." if set(protocols) == set(PROTOCOLS) else
               f"protocol {', '.join(protocols)} only: under `hinas-reference` BM3D would denoise every "
               "overlapping 64x64 patch separately, which does not fit this profile's time budget."))


def sota_table(rows: dict) -> pd.DataFrame:
    """Table 10 measured here, from the plan's rows: our HiNAS networks (one per seed), DnCNN
    trained with the same budget, BM3D and the noisy input, every row scored on the same images
    (one row per network or baseline, protocol and sigma)."""
    tr = rows["train"]
    names = {r["item"]: METHODS.get(r.get("model"), r.get("model")) for r in tr.to_dict("records")} if len(tr) else {}
    return score_rows(rows, names)


def sota_view(ours: pd.DataFrame) -> pd.DataFrame:
    """:func:`hinas.book.tables.score_summary` of :func:`sota_table` with the columns the chapter shows."""
    out = ours[["method", "protocol", "PSNR", "SSIM", "params", "s_per_image", "train_s", "seeds", "left_out"]]
    return out.rename(columns={"s_per_image": "s/image", "train_s": "train s", "left_out": "runs left out"})


def sota_caption(table: pd.DataFrame, profile: str, sigma: float, seeds) -> str:
    """Where :func:`sota_table` was measured."""
    r0 = table[table.method == HINAS].iloc[0]
    return (f"measured here: profile `{profile}`, device `{r0.device}`, test set `{r0.dataset}` "
            f"({int(r0.images)} image(s)), sigma {sigma:g}, {int(r0.train_iterations):,} training iterations, "
            f"seeds {list(seeds)}")


def _margin_words(a, b, spread) -> str:
    """Where the margin of a verdict between rows ``a`` and ``b`` comes from (:data:`hinas.eval.stats.TIE_RULE`)."""
    stds = [x for x in (a.psnr_std, b.psnr_std) if pd.notna(x)]
    if stds:
        return f"the seed spread of {max(stds):.2f} dB"
    if spread is not None and pd.notna(spread):
        return f"HiNAS's seed spread of {spread:.2f} dB"
    return f"{ONE_SEED_MARGIN_DB} dB, as no seed spread was measured here"


def sota_reading(ours: pd.DataFrame, published: pd.DataFrame, profile: str, sigma: float) -> list[str]:
    """Sentences from the :func:`~hinas.book.tables.score_summary` of :func:`sota_table` (standard
    protocol): has HiNAS learned (against the noisy input), against DnCNN and BM3D by the tie rule
    (single-seed rows take HiNAS's seed spread), and the ``hinas-reference`` scores beside the paper's (``published``: Table 10 at
    the paper's sigma). A method without a scored run is named with its evidence and compared with
    nothing."""
    st = ours[ours.protocol == "standard"].set_index("method")
    ref = ours[ours.protocol == "hinas-reference"].set_index("method")
    pub = published.set_index("method")
    have = {m for m in st.index if pd.notna(st.loc[m].psnr)}
    left = ours.attrs.get("left_out", [])
    lines = [f"Left out (a run that diverged or did not learn is named, never scored): {line}" for line in left]
    if HINAS not in have:
        noisy = (f" (the noisy input scores {st.loc[NOISY_INPUT].psnr:.2f} dB; the runs above are left out)"
                 if NOISY_INPUT in have else "")
        return lines + [f"**Learning.** No HiNAS network is scored at this budget{noisy}, so nothing here compares "
                        "architectures."]
    h = st.loc[HINAS]
    spread = h.psnr_std if pd.notna(h.psnr_std) else None

    def versus(a, b):
        ra, rb = st.loc[a], st.loc[b]
        return compare(ra.psnr, ra.psnr_std, rb.psnr, rb.psnr_std, spread), ra.psnr - rb.psnr

    v, d = versus(HINAS, NOISY_INPUT)
    lines.append(f"**Learning.** Our HiNAS network ({profile}, {int(h.iterations):,} training iterations, "
                 f"{int(h.params):,} parameters, {int(h.seeds)} scored seed(s)) scores {fmt_mean_std(h.psnr, h.psnr_std)} "
                 f"dB at sigma {sigma:g}; the noisy input scores {st.loc[NOISY_INPUT].psnr:.2f} dB, so the network is "
                 f"{WORDS[v]} the input by {d:+.2f} dB.")
    if DNCNN in have:
        dn = st.loc[DNCNN]
        lines.append(f"DnCNN with the same budget: {fmt_mean_std(dn.psnr, dn.psnr_std)} dB with {int(dn.params):,} "
                     f"parameters ({int(dn.seeds)} seed(s)), {versus(DNCNN, NOISY_INPUT)[1]:+.2f} dB against the noisy input.")
        v2, d2 = versus(HINAS, DNCNN)
        call = (WITHIN_SEED if v2 == "tie" else
                ("HiNAS ahead" if v2 == "ahead" else "DnCNN ahead"))
        lines.append(f"HiNAS against DnCNN: {d2:+.2f} dB, **{call}** (margin: {_margin_words(h, dn, spread)}). "
                     "The paper has no DnCNN row.")
    if "BM3D" in have:
        vb, db = versus(HINAS, "BM3D")
        bm = st.loc["BM3D"]
        lines.append(f"BM3D (no training) on {int(bm.images)} image(s): {bm.psnr:.2f} dB, {bm.s_per_image:.2f} s/image "
                     f"on CPU; our HiNAS is {WORDS[vb]} it ({db:+.2f} dB; margin: {_margin_words(h, bm, spread)}). "
                     f"Published, HiNAS is above BM3D by {pub.loc['HiNAS'].psnr - pub.loc['BM3D'].psnr:.2f} dB after "
                     "400k-600k training iterations on BSD500.")
    if HINAS in ref.index and pd.notna(ref.loc[HINAS].psnr):
        lines.append(f"The released code's protocol (`hinas-reference`) gives {ref.loc[HINAS].psnr:.2f} dB for our "
                     f"HiNAS and {ref.loc[NOISY_INPUT].psnr:.2f} dB for the noisy input; the paper's "
                     f"{pub.loc['HiNAS'].psnr:.2f} dB is on BSD200 and not comparable with these images.")
    return lines


def glance_rows(ours: pd.DataFrame, published: pd.DataFrame, sigma: float) -> list:
    """Chapter 6's headline numbers for the intro (:func:`hinas.book.glance.record_glance`)."""
    st = ours[ours.protocol == "standard"].set_index("method")
    pub = published.set_index("method")
    paper = {HINAS: f"{pub.loc['HiNAS'].psnr:.2f} dB (BSD200)", "BM3D": f"{pub.loc['BM3D'].psnr:.2f} dB (BSD200)"}
    return [{"what": f"{m} (sigma {sigma:g}, standard protocol)",
             "measured": (fmt_mean_std(st.loc[m].psnr, st.loc[m].psnr_std) + " dB" if pd.notna(st.loc[m].psnr) else
                          "no result: every run diverged or did not learn (chapter 6)"),
             "published": paper.get(m, "–"), "chapter": "6"} for m in (HINAS, DNCNN, "BM3D", NOISY_INPUT) if m in st.index]
