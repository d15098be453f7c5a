"""What this book shows and what it does not: each of the paper's claims beside this book's
evidence and a verdict computed from the results (the intro's first table, issue 33).

The claims are data (:data:`CLAIMS`). Their verdicts come from two places: the committed results
under ``results/`` (read at build time: :func:`committed_claims`) and the chapters, which record
a claim row from their own numbers when they run (:func:`claim_row`, stored with the chapter's
glance rows by :func:`hinas.book.glance.record_glance`). A claim nothing has measured is
*untested*, with the reason. The verdict words and their rule are :data:`VERDICTS`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hinas.book import committed as cm
from hinas.book import published
from hinas.book.full_search import item_folder, progress

# the verdicts, in the order a reader should care about them, and what each means
VERDICTS = {
    "reproduced": "measured here at the paper's scale and data, within the paper's own seed spread or direction",
    "contradicted": "measured here at the paper's scale and data, and outside it",
    "direction only": "measured here, in the paper's direction, but smaller or at a smaller scale than the paper's",
    "untested": "not measured at the paper's scale here; the evidence column says what is shown instead and why",
}

# (key, the claim, where the paper makes it)
CLAIMS = (
    ("table10", "The searched denoiser reaches 26.81 dB at sigma 50 on BSD200 (Table 10), above BM3D and DnCNN-size "
                "networks", "Table 10"),
    ("search", "A full search (100 epochs on BSD500) finds the architecture; alpha and beta decide it", "Sec. 3.3, 4.1"),
    ("memory", "Cell sharing (Eq. 5) saves supernet memory by a factor of 3 over separate cells (Eq. 6)", "Sec. 3.2"),
    ("ablations", "LWAS, residual learning, the searched widths, the SSIM loss and the searched cells each help "
                  "(3 seeds each)", "Tables 1, 3, 4, 6"),
    ("bicubic", "Bicubic upscaling scores as Table 11's baseline row (x3: Set5, Set14, B100, Urban100)", "Table 11"),
    ("sr", "The same search gives competitive x2/x3/x4 super-resolution networks", "Tables 2, 5, 7, 9, 11"),
)


def claim_row(key: str, evidence: str, verdict: str, chapter: str) -> dict:
    """One claim's evidence and verdict as a chapter records it (a glance row with ``claim``)."""
    if key not in dict((k, c) for k, c, _ in CLAIMS):
        raise ValueError(f"unknown claim {key!r}; one of {', '.join(k for k, _, _ in CLAIMS)}")
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}; one of {', '.join(VERDICTS)}")
    return {"claim": key, "evidence": evidence, "verdict": verdict, "chapter": chapter}


def memory_claim(ratio: float, where: str, chapter: str) -> dict:
    """The memory claim from a measured Eq. 6 / Eq. 5 memory ratio of one search step."""
    verdict = "direction only" if 1.0 < ratio < 2.5 else ("reproduced" if ratio >= 2.5 else "contradicted")
    return claim_row("memory", f"x{ratio:.2f} measured ({where}); the paper's factor is 3", verdict, chapter)


def ablation_claim(agree: int, ties: int, disagree: int, not_learned: int, profile: str, chapter: str) -> dict:
    """The ablation claim from chapter 5's orderings against the paper's (its counts)."""
    total = agree + ties + disagree + not_learned
    where = f"{agree} of {total} orderings agree, {ties} ties, {disagree} disagree, {not_learned} not learned"
    if profile in ("gpu", "paper"):
        verdict = "contradicted" if disagree else ("reproduced" if agree == total else "untested")
        return claim_row("ablations", f"{where} (profile `{profile}`)", verdict, chapter)
    return claim_row("ablations", f"only at the `{profile}` scale, one seed a row: {where}; no paper-scale ablation has "
                                  "run", "untested", chapter)


def _table10(repo) -> dict:
    rows = cm.denoise_rows(repo, 50.0)
    ref = rows[(rows.model == "hinas") & (rows.protocol == "hinas-reference") & (rows.precision == "fp32")] \
        if len(rows) else rows
    if not len(ref):
        return claim_row("table10", "no committed HiNAS network has been evaluated on BSD200 at sigma 50", "untested", "6")
    r = ref.iloc[0]
    share = r.train_iterations / r.paper_iterations if r.paper_iterations else float("nan")
    std = rows[(rows.model == "hinas") & (rows.protocol == "standard") & (rows.precision == "fp32")]
    text = (f"committed GPU network: {r.psnr:.2f} dB under `hinas-reference` on BSD200"
            + (f" ({r.psnr - std.psnr.iloc[0]:+.2f} dB over the standard protocol on the same network)" if len(std)
               else "") + f", {ref.seed.nunique()} seed(s), trained {share:.1%} of the "
            "released length")
    if str(r.network) in cm.unsearched_networks(repo):
        return claim_row("table10", text + "; its genotype was **not searched** (its search's alpha and beta did not "
                                           "move), so this tests the training, not the search", "untested", "6")
    spread = published.seed_spread_db(50) or 0.0
    if share < 0.95:
        return claim_row("table10", text + "; a shortened training cannot test the published figure", "untested", "6")
    verdict = "reproduced" if r.psnr >= 26.81 - spread else "contradicted"
    return claim_row("table10", text + f" (published 26.81 dB, seed spread {spread:.2f} dB)", verdict, "6")


def _search(repo) -> dict:
    folder = item_folder(repo)
    if not Path(folder).is_dir():
        return claim_row("search", "no full-length search is committed", "untested", "4")
    p = progress(folder)
    text = f"`{p['item']}`: {p['epochs_done']} of {p['epochs']} epochs ({p['phase']})"
    if p["state"] != "finished":
        return claim_row("search", text + "; in progress on the CPU, so no searched genotype exists yet", "untested", "4")
    return claim_row("search", text + "; finished: chapter 4 shows whether alpha and beta moved", "direction only", "4")


BICUBIC_TOLERANCE_DB = 0.05  # the paper prints 2 decimals; MATLAB's imresize against ours differs by ~0.01


def _bicubic(repo) -> dict:
    t = cm.bicubic_table(repo, scale=3)
    t = t[(t.protocol == "standard") & t["PSNR (paper)"].notna()] if len(t) else t
    if not len(t):
        return claim_row("bicubic", "no bicubic baseline is committed under `results/baselines/`", "untested", "3")
    worst = float((t.PSNR - t["PSNR (paper)"]).abs().max())
    verdict = "reproduced" if worst <= BICUBIC_TOLERANCE_DB else "contradicted"
    return claim_row("bicubic", f"{len(t)} test sets, standard protocol: at most {worst:.3f} dB from the published "
                                f"row (tolerance {BICUBIC_TOLERANCE_DB} dB)", verdict, "3")


# the paper's search supernet and batch (Sec. 4.1), at which a memory measurement tests its factor
PAPER_SUPERNET = {"f": 10, "layers": 3, "steps": 4, "levels": 3, "batch": 6, "size": 64}


def _memory(repo) -> dict | None:
    """The memory claim from a committed ``results/bench/supernet_memory_*.json`` of the paper's
    supernet (None when there is none: a chapter's own measurement then stands)."""
    from hinas.campaign import read_json

    for f in sorted((Path(repo) / "results" / "bench").glob("supernet_memory_*.json")):
        d = read_json(f) or {}
        cfg = d.get("config") or {}
        if "memory_ratio" in d and all(cfg.get(k) == v for k, v in PAPER_SUPERNET.items()):
            return memory_claim(float(d["memory_ratio"]), f"the paper's supernet and batch, `results/bench/{f.name}`, "
                                f"{d.get('device', '?')}; the cells alone would give 3", "2")
    return None


def _sr(repo) -> dict:
    rows = cm.campaign_rows(repo, "train")
    sr = rows[rows.task == "sr"] if len(rows) and "task" in rows else rows.iloc[0:0] if len(rows) else rows
    if not len(sr):
        return claim_row("sr", "no SR network has been searched or trained; only the bicubic baseline is measured "
                               "(chapter 3)", "untested", "3")
    return claim_row("sr", f"{len(sr)} SR training(s) committed; not yet compared with the tables", "untested", "6")


def committed_claims(repo) -> list[dict]:
    """The claims the committed results under ``results/`` decide (read at build time)."""
    return [r for r in (_table10(repo), _search(repo), _memory(repo), _bicubic(repo), _sr(repo)) if r]


def claims_table(recorded: list[dict]) -> pd.DataFrame:
    """One row per claim of :data:`CLAIMS`, in order: the claim, where the paper makes it, this
    book's evidence and verdict; a chapter's row (``recorded``) overrides a committed one for the
    same claim only when the committed one is untested; a claim nothing recorded is untested."""
    best = {}
    for r in recorded:
        old = best.get(r["claim"])
        if old is None or old["verdict"] == "untested":
            best[r["claim"]] = r
    out = []
    for key, claim, where in CLAIMS:
        r = best.get(key, {"evidence": "not measured by this build", "verdict": "untested", "chapter": "–"})
        out.append({"the paper claims": claim, "where": where, "this book's evidence": r["evidence"],
                    "verdict": r["verdict"], "chapter": r["chapter"]})
    return pd.DataFrame(out)


def claims_markdown(table: pd.DataFrame) -> list[str]:
    """:func:`claims_table` as Markdown lines, with the verdicts' rule under it."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |")
    lines += ["", "Verdicts: " + "; ".join(f"*{k}*: {v}" for k, v in VERDICTS.items()) + "."]
    return lines
