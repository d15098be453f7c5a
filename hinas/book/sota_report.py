"""Chapter 6's reading of Table 10 measured here (:func:`hinas.book.tables.sota`): one row per
(method, protocol) with the mean and spread over seeds, where it was measured, and the sentences
the chapter draws from it with the tie rule (:func:`hinas.book.compare.compare`) against the
noisy input, DnCNN, BM3D and the paper. Tables are DataFrames for :func:`hinas.book.tables.show`."""

from __future__ import annotations

import pandas as pd

from hinas.book.compare import NOISY_INPUT, compare
from hinas.book.settings import PROTOCOLS, profile_settings
from hinas.book.tables import fmt_mean_std

HINAS, DNCNN = "HiNAS (ours)", "DnCNN (same budget)"  # the rows of tables.sota
WORDS = {"ahead": "above", "behind": "below", "tie": "level with (a tie)"}  # a verdict as a position


def setup_note(profile: str, device: str, seeds, sigma: float) -> str:
    """The chapter's measurement setup: test images, crops, and where BM3D was run."""
    s = profile_settings(profile)
    return (f"Profile `{profile}`, device `{device}`, seeds {list(seeds)}, sigma {sigma:g}; test images per "
            f"evaluation: {s['eval_limit'] or 'all'}, central crop {s['eval_crop'] or 'none'}; "
            f"BM3D on {s['bm3d_limit'] or 'all'} image(s), "
            + ("both protocols." if set(s.get("bm3d_protocols", PROTOCOLS)) == set(PROTOCOLS) else
               f"protocol {', '.join(s['bm3d_protocols'])} only: under `hinas-reference` BM3D would denoise every "
               "overlapping 64x64 patch separately, which does not fit this profile's time budget."))


def sota_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, protocol) of :func:`~hinas.book.tables.sota`, protocols in
    :data:`PROTOCOLS` order: mean and std over seeds of PSNR/SSIM (also formatted, ``PSNR``,
    ``SSIM``), params, seconds per image, training seconds and iterations, images and seeds
    (NaN for the untrained rows)."""
    order = table.protocol.map({p: i for i, p in enumerate(PROTOCOLS)})
    g = table.assign(order=order).sort_values("order", kind="stable").groupby(
        ["method", "protocol"], sort=False, dropna=False)
    ours = g.agg(psnr=("psnr", "mean"), psnr_std=("psnr", "std"), ssim=("ssim", "mean"), ssim_std=("ssim", "std"),
                 params=("params", "first"), s_per_image=("seconds_per_image", "mean"),
                 train_s=("train_seconds", "mean"), iterations=("train_iterations", "first"),
                 images=("images", "first"), seeds=("seed", "nunique"), dataset=("dataset", "first"),
                 device=("device", "first")).reset_index()
    ours["PSNR"] = [fmt_mean_std(a, b, 2) for a, b in zip(ours.psnr, ours.psnr_std)]
    ours["SSIM"] = [fmt_mean_std(a, b, 4) for a, b in zip(ours.ssim, ours.ssim_std)]
    ours.loc[ours.iterations.isna(), "seeds"] = float("nan")
    return ours


def sota_view(ours: pd.DataFrame) -> pd.DataFrame:
    """:func:`sota_summary` with the columns the chapter shows."""
    return ours[["method", "protocol", "PSNR", "SSIM", "params", "s_per_image", "train_s", "seeds"]].rename(
        columns={"s_per_image": "s/image", "train_s": "train s"})


def sota_caption(table: pd.DataFrame, profile: str, sigma: float, seeds) -> str:
    """Where :func:`~hinas.book.tables.sota` was measured."""
    r0 = table[table.method == HINAS].iloc[0]
    return (f"measured here: profile `{profile}`, device `{r0.device}`, test set `{r0.dataset}` "
            f"({int(r0.images)} image(s)), sigma {sigma:g}, {int(r0.train_iterations):,} training iterations, "
            f"seeds {list(seeds)}")


def sota_reading(ours: pd.DataFrame, published: pd.DataFrame, profile: str, sigma: float) -> list[str]:
    """Sentences from :func:`sota_summary` (standard protocol): has HiNAS learned (against the
    noisy input), against DnCNN and BM3D by the tie rule (single-seed rows take HiNAS's seed
    spread), and the ``hinas-reference`` scores beside the paper's (``published``: Table 10 at
    the paper's sigma)."""
    st = ours[ours.protocol == "standard"].set_index("method")
    ref = ours[ours.protocol == "hinas-reference"].set_index("method")
    pub = published.set_index("method")
    h = st.loc[HINAS]
    spread = h.psnr_std if pd.notna(h.psnr_std) else None

    def versus(a, b):
        ra, rb = st.loc[a], st.loc[b]
        return compare(ra.psnr, ra.psnr_std, rb.psnr, rb.psnr_std, spread), ra.psnr - rb.psnr

    v, d = versus(HINAS, NOISY_INPUT)
    learned = v == "ahead"
    lines = [f"**Learning.** Our HiNAS network ({profile}, {int(h.iterations):,} training iterations, "
             f"{int(h.params):,} parameters) scores {fmt_mean_std(h.psnr, h.psnr_std)} dB at sigma {sigma:g}; "
             f"the noisy input scores {st.loc[NOISY_INPUT].psnr:.2f} dB, so the network is {WORDS[v]} the input "
             f"by {d:+.2f} dB: " + ("it denoises." if learned else "**it has not learned to denoise at this budget.**")]
    if DNCNN in st.index:
        dn = st.loc[DNCNN]
        vd, dd = versus(DNCNN, NOISY_INPUT)
        lines.append(f"DnCNN with the same budget: {fmt_mean_std(dn.psnr, dn.psnr_std)} dB with {int(dn.params):,} "
                     f"parameters, {dd:+.2f} dB against the noisy input (" +
                     ("it learned" if vd == "ahead" else "it did **not** learn measurably") + ").")
        v2, d2 = versus(HINAS, DNCNN)
        margin = max([x for x in (h.psnr_std, dn.psnr_std) if pd.notna(x)] or [0])
        lines.append(f"HiNAS against DnCNN: {d2:+.2f} dB, a **"
                     f"{v2 if v2 == 'tie' else ('win for HiNAS' if v2 == 'ahead' else 'win for DnCNN')}**"
                     + ("" if v2 == "tie" else f" (larger than the seed spread of {margin:.2f} dB)")
                     + (". The paper has no DnCNN row." if learned and vd == "ahead" else
                        "; with a network that has not learned, the comparison says nothing about the architectures."))
    if "BM3D" in st.index:
        vb, db = versus(HINAS, "BM3D")
        bm = st.loc["BM3D"]
        lines.append(f"BM3D (no training) on {int(bm.images)} image(s): {bm.psnr:.2f} dB, {bm.s_per_image:.2f} s/image "
                     f"on CPU; our HiNAS is {WORDS[vb]} it ({db:+.2f} dB). Published, HiNAS is above BM3D by "
                     f"{pub.loc['HiNAS'].psnr - pub.loc['BM3D'].psnr:.2f} dB after 400k-600k training iterations on BSD500.")
    lines.append(f"The released code's protocol (`hinas-reference`) gives {ref.loc[HINAS].psnr:.2f} dB for our HiNAS "
                 f"and {ref.loc[NOISY_INPUT].psnr:.2f} dB for the noisy input; the paper's {pub.loc['HiNAS'].psnr:.2f} dB "
                 "is on BSD200 and not comparable with these images.")
    return lines


def glance_rows(ours: pd.DataFrame, published: pd.DataFrame, sigma: float) -> list:
    """Chapter 6's headline numbers for the intro (:func:`hinas.book.glance.record_glance`)."""
    st = ours[ours.protocol == "standard"].set_index("method")
    pub = published.set_index("method")
    paper = {HINAS: f"{pub.loc['HiNAS'].psnr:.2f} dB (BSD200)", "BM3D": f"{pub.loc['BM3D'].psnr:.2f} dB (BSD200)"}
    return [{"what": f"{m} (sigma {sigma:g}, standard protocol)",
             "measured": fmt_mean_std(st.loc[m].psnr, st.loc[m].psnr_std) + " dB", "published": paper.get(m, "–"),
             "chapter": "6"} for m in (HINAS, DNCNN, "BM3D", NOISY_INPUT) if m in st.index]
