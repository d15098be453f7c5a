"""Chapter 6's protocol section, from the committed protocol ladders (``results/protocol/``, written by
``hinas protocol-ladder``, :mod:`hinas.eval.protocol_ladder`): what each difference between the two
denoising protocols is worth for each method, why our BM3D differs from the published one, and the
gap between our HiNAS and the paper's split into measured parts and parts that are still missing.
Every number is read from a committed file; every sentence is computed from those numbers with the
paired rule (:data:`hinas.eval.stats.PAIRED_RULE`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from hinas.book import tables
from hinas.book.committed import METHOD_LABELS, UNSEARCHED, method_label
from hinas.campaign.plan import renamed_path
from hinas.eval import stats
from hinas.eval.protocol_ladder import INPUT_STEPS, PROTOCOL_STEPS, STEPS, step_differences, step_scores
from hinas.safeio import load_json_file

LADDERS = "results/protocol"
COMMAND = "hinas protocol-ladder"
ORDER = (METHOD_LABELS["hinas"], UNSEARCHED, METHOD_LABELS["dncnn"], "BM3D", METHOD_LABELS["noisy"])


def ladders(repo, sigma: float, unsearched: Optional[dict] = None) -> dict:
    """The committed ladders at ``sigma`` by method label, networks first, then BM3D (profiles other
    than the default with their own label) and the noisy input, each with ``file`` added. A committed
    file that cannot be read stops the book with its name (a result is never silently dropped)."""
    out = {}
    for p in sorted((Path(repo) / LADDERS).glob("ladder_*.json")):
        d = load_json_file(p, "protocol ladder")
        if not isinstance(d, dict) or d.get("sigma") != sigma or not d.get("per_image"):
            continue
        if d["method"] == "network":
            label = method_label(d.get("model"), d.get("weights") and renamed_path(d["weights"]), unsearched)
        elif d["method"] == "bm3d" and d.get("bm3d_profile", "np") != "np":
            label = f"BM3D (profile {d['bm3d_profile']})"
        else:
            label = METHOD_LABELS.get(d["method"], d["method"])
        out[label] = {**d, "file": str(p.relative_to(repo))}
    rank = {k: i for i, k in enumerate(ORDER)}
    return dict(sorted(out.items(), key=lambda kv: (rank.get(kv[0].split(" (profile")[0], len(ORDER)), kv[0])))


def _images(lad: dict) -> str:
    counts = {k: len(d["per_image"]) for k, d in lad.items()}
    most = max(counts.values())
    fewer = [f"{k}: the first {n}" for k, n in counts.items() if n < most]
    names = ", ".join(sorted({d["dataset"] for d in lad.values()}))
    return f"{names}, the first {most} images sorted by name" + (f" ({'; '.join(fewer)})" if fewer else "")


def _cell(d: dict, digits: int = 3) -> str:
    return f"{d['mean']:+.{digits}f} (SE {d['se']:.{digits}f})"


def _ssim_only(key: str) -> bool:
    """A step that changes only how SSIM is computed (its PSNR change is zero by construction)."""
    i = [s.key for s in PROTOCOL_STEPS].index(key)
    a, b = PROTOCOL_STEPS[i - 1], PROTOCOL_STEPS[i]
    return i > 0 and (a.restoration, a.float_output) == (b.restoration, b.float_output)


def ladder_table(lad: dict) -> pd.DataFrame:
    """One row per protocol step, one column per method with every protocol step: the absolute PSNR
    at both ends, and each step's paired change (mean over images, its standard error)."""
    full = {k: d for k, d in lad.items() if all(s.key in d["steps"] for s in PROTOCOL_STEPS)}
    if not full:
        return pd.DataFrame()
    rows = [{"step": "standard protocol: PSNR (dB)",
             **{k: f"{d['summary']['standard']['psnr']:.2f}" for k, d in full.items()}}]
    diffs = {k: {r["step"]: r for r in step_differences(d)} for k, d in full.items()}
    for s in PROTOCOL_STEPS[1:]:
        if _ssim_only(s.key):
            rows.append({"step": s.label + ": SSIM change", **{k: _cell(diffs[k][s.key]["ssim"], 4) for k in full}})
        else:
            rows.append({"step": s.label + ": change (dB)", **{k: _cell(diffs[k][s.key]["psnr"]) for k in full}})
    rows.append({"step": "hinas-reference: PSNR (dB)",
                 **{k: f"{d['summary']['fresh-noise']['psnr']:.2f}" for k, d in full.items()}})
    total = {k: step_differences(d, against="standard") for k, d in full.items()}
    rows.append({"step": "total change, standard to hinas-reference (dB)",
                 **{k: _cell(next(r for r in total[k] if r["step"] == "fresh-noise")["psnr"]) for k in full}})
    return pd.DataFrame(rows)


def ladder_caption(lad: dict) -> str:
    files = ", ".join(f"`{d['file']}`" for d in lad.values())
    return (f"Measured on {_images(lad)}, sigma {next(iter(lad.values()))['sigma']:g}, the same images and noise "
            f"for every method ({COMMAND}; files {files}). A change is the mean over images of the per-image "
            f"difference from the row above, with its standard error (SE).")


def ladder_reading(lad: dict) -> list[str]:
    """Per method: the total protocol change, its largest part, and which parts are ties."""
    out = []
    for label, d in lad.items():
        if not all(s.key in d["steps"] for s in PROTOCOL_STEPS):
            continue
        parts = [r for r in step_differences(d) if STEPS[r["step"]] in PROTOCOL_STEPS]
        total = next(r for r in step_differences(d, against="standard") if r["step"] == "fresh-noise")["psnr"]
        big = max(parts, key=lambda r: abs(r["psnr"]["mean"]))
        ties = [r["label"].lstrip("+ ") for r in parts
                if not _ssim_only(r["step"]) and stats.paired_verdict(r["psnr"]) == "tie"]
        out.append(f"**{label}**: `hinas-reference` scores {total['mean']:+.2f} dB (SE {total['se']:.3f}) against "
                   f"`standard` on these {total['images']} images; the largest part is *{big['label'].lstrip('+ ')}* "
                   f"({big['psnr']['mean']:+.2f} dB, higher on {big['psnr']['wins']} of {big['psnr']['images']} "
                   f"images)" + (f"; a tie by the paired rule: {'; '.join(ties)}" if ties else "") + ".")
    return out


def _published(method: str, sigma: float) -> Optional[float]:
    pub = tables.published_rows("table10")
    p = pub[(pub.sigma == sigma) & (pub.method == method)].psnr
    return float(p.iloc[0]) if len(p) else None


def _bm3d_parts(lad: dict, rows: pd.DataFrame, sigma: float) -> list[dict]:
    """``{what, images, psnr, change}`` rows: the published and committed whole-set BM3D scores, then
    on the ladder's images each candidate reason as a paired change (``change``, a
    :func:`hinas.eval.stats.paired_difference`) from the standard score on the same images."""
    from hinas.eval.stats import paired_difference

    base = lad.get("BM3D")
    if base is None:
        return []
    out = []
    pub = _published("BM3D", sigma)
    if pub is not None:
        out.append({"what": "published (Table 10)", "images": "BSD200", "psnr": pub, "change": None})
    full = rows[(rows.model == "bm3d") & (rows.protocol == "standard")] if len(rows) else rows
    if len(full):
        out.append({"what": "ours, standard protocol (committed, results/baselines/)",
                    "images": int(full.images.iloc[0]), "psnr": float(full.psnr.iloc[0]), "change": None})
    std = base["summary"]["standard"]["psnr"]
    out.append({"what": "ours, standard protocol", "images": len(base["per_image"]), "psnr": std, "change": None})
    for r in step_differences(base, against="standard"):
        if STEPS[r["step"]] in INPUT_STEPS or r["step"] == "fresh-noise":
            what = ("the released code's protocol (hinas-reference)" if r["step"] == "fresh-noise"
                    else STEPS[r["step"]].label)
            out.append({"what": what, "images": r["psnr"]["images"], "psnr": std + r["psnr"]["mean"],
                        "change": r["psnr"]})
    for label, d in lad.items():
        if label.startswith("BM3D (profile"):
            diff = paired_difference(step_scores(d, "standard"), step_scores(base, "standard"))
            out.append({"what": f"standard protocol, BM3D {label[6:-1]}", "images": diff["images"],
                        "psnr": std + diff["mean"], "change": diff})
    return out


def bm3d_table(lad: dict, rows: pd.DataFrame, sigma: float) -> pd.DataFrame:
    """:func:`_bm3d_parts` as the chapter shows it."""
    return pd.DataFrame([{"what": r["what"], "images": r["images"], "PSNR (dB)": f"{r['psnr']:.2f}",
                          "change from standard on the same images (dB)": _cell(r["change"]) if r["change"] else "–"}
                         for r in _bm3d_parts(lad, rows, sigma)])


def bm3d_reading(lad: dict, rows: pd.DataFrame, sigma: float) -> list[str]:
    """How far each measured reason goes towards the published BM3D number."""
    parts = _bm3d_parts(lad, rows, sigma)
    pub = next((r["psnr"] for r in parts if r["what"].startswith("published")), None)
    ours = next((r["psnr"] for r in parts if r["what"].startswith("ours")), None)
    if pub is None or ours is None:
        return []
    gap = ours - pub
    out = [f"Our BM3D scores {gap:+.2f} dB against the published one (standard protocol)."]
    for r in parts:
        c = r["change"]
        if c is None:
            continue
        verdict = stats.paired_verdict(c)
        toward = verdict != "tie" and c["mean"] * gap < 0
        out.append(f"*{r['what']}*: {c['mean']:+.2f} dB (SE {c['se']:.3f}, {c['images']} images), "
                   + (f"towards the published number: {abs(c['mean'] / gap):.0%} of the gap" if toward else
                      "a tie by the paired rule" if verdict == "tie" else "away from the published number") + ".")
    closing = [r for r in parts if r["change"] and stats.paired_verdict(r["change"]) != "tie"
               and r["change"]["mean"] * gap < 0 and abs(r["change"]["mean"]) >= 0.8 * abs(gap)]
    out.append("A measured reason accounts for most of the gap: " + ", ".join(f"*{r['what']}*" for r in closing) + "."
               if closing else "No measured reason alone accounts for most of the gap; the rest is not explained "
                               "by any measurement here.")
    return out


def gap_table(rows: pd.DataFrame, lad: dict, sigma: float, search: Optional[str] = None) -> pd.DataFrame:
    """Our HiNAS against the paper's, step by step: the measured protocol part (whole test set,
    committed evaluations; split on the ladder's images), then what is not measured yet (``search``:
    how the genotype's search is described, e.g. its movement)."""
    pub = _published("HiNAS", sigma)
    hin = rows[(rows.model == "hinas") & (rows.precision == "fp32")] if len(rows) else rows
    std = hin[hin.protocol == "standard"]
    ref = hin[hin.protocol == "hinas-reference"]
    if pub is None or not len(std):
        return pd.DataFrame()
    s = std.iloc[0]
    out = [{"part": "ours, standard protocol", "measured": "yes", "images": int(s.images), "dB": f"{s.psnr:.2f}"}]
    if len(ref):
        r = ref.iloc[0]
        out.append({"part": "protocol: standard to hinas-reference", "measured": "yes", "images": int(r.images),
                    "dB": f"{r.psnr - s.psnr:+.2f}"})
        net = next((d for d in lad.values() if d["method"] == "network" and d.get("model") == "hinas"), None)
        if net is not None:
            for p in step_differences(net):
                if STEPS[p["step"]] in PROTOCOL_STEPS and p["step"] != "padded-ssim":
                    out.append({"part": f"  of which {p['label'].lstrip('+ ')}", "measured": "yes",
                                "images": p["psnr"]["images"], "dB": _cell(p["psnr"])})
        out.append({"part": "ours, hinas-reference protocol", "measured": "yes", "images": int(r.images),
                    "dB": f"{r.psnr:.2f}"})
        rest = pub - r.psnr
    else:
        rest = pub - s.psnr
    out.append({"part": f"training length: {tables.training_length(s.train_iterations, s.paper_iterations)}",
                "measured": "no: needs the long runs", "images": "–", "dB": "–"})
    out.append({"part": "search: " + (search or "the committed genotype's search"), "measured":
                "no: needs the full-length search", "images": "–", "dB": "–"})
    out.append({"part": "seeds: 1 (the paper reports a mean over its runs)", "measured": "no", "images": "–",
                "dB": "–"})
    out.append({"part": "not explained by any measurement here", "measured": "–", "images": "–", "dB": f"{rest:+.2f}"})
    out.append({"part": "published HiNAS (Table 10)", "measured": "–", "images": "BSD200", "dB": f"{pub:.2f}"})
    return pd.DataFrame(out)


def _search_words(repo) -> Optional[str]:
    from hinas.book.committed import movement_label, search_movements, unsearched_networks

    moves = search_movements(repo)
    for net, item in unsearched_networks(repo).items():
        where = net.rsplit("/", 1)[0]
        return f"{item}, {movement_label(moves.get(f'{where}/{item}'))}"
    return None


def section(repo, sigma: float, rows: pd.DataFrame, unsearched: Optional[dict] = None) -> list:
    """What chapter 6 displays for the protocol ladders, BM3D's gap and HiNAS's gap at ``sigma``."""
    from IPython.display import Markdown

    lad = ladders(repo, sigma, unsearched)
    if not lad:
        return [Markdown(f"**Missing:** no protocol ladder at sigma {sigma:g} is committed under `{LADDERS}/` "
                         f"(`{COMMAND}` writes one).")]
    out = [Markdown(ladder_caption(lad)), tables.show(ladder_table(lad)), Markdown(tables.bullets(ladder_reading(lad)))]
    bm3d = bm3d_table(lad, rows, sigma)
    if len(bm3d):
        out += [Markdown(f"**Our BM3D against the published one** (sigma {sigma:g}; the candidate reasons measured "
                         "on the ladder's images, each as a paired change from the standard score on them):"),
                tables.show(bm3d), Markdown(tables.bullets(bm3d_reading(lad, rows, sigma)))]
    gap = gap_table(rows, lad, sigma, _search_words(repo))
    if len(gap):
        out += [Markdown(f"**Our HiNAS against the paper's, part by part** (sigma {sigma:g}): the measured parts, "
                         "then the differences no measurement here isolates yet, stated as missing."), tables.show(gap)]
    return out
