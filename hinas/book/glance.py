"""The intro's results at a glance: each chapter records its headline numbers when it runs
(:func:`record_glance`), and the build writes them as one table (:func:`write_glance`); rows
with a ``claim`` (:func:`hinas.book.claims.claim_row`) go to the intro's first table, what is
shown and what is not (:func:`write_claims`)."""

from __future__ import annotations

import json
from pathlib import Path

from hinas.book.campaigns import plan_progress


def glance_path(runs_root, profile: str) -> Path:
    """The folder where the chapters' headline numbers for ``profile`` are kept, one file per
    chapter (chapters executed side by side never write the same file)."""
    return Path(runs_root) / f"book-glance-{profile}"


def record_glance(runs_root, profile: str, chapter: str, rows: list) -> None:
    """Remember a chapter's headline numbers for the intro's results-at-a-glance table."""
    from hinas.safeio import atomic_write_text

    folder = glance_path(runs_root, profile)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{chapter}.json", json.dumps(rows, indent=1, default=str))


def _recorded(runs_root, profile: str) -> dict:
    """Chapter -> rows, from the files :func:`record_glance` wrote (an unreadable one is skipped)."""
    out = {}
    for f in sorted(glance_path(runs_root, profile).glob("*.json")):
        try:
            out[f.stem] = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return out


GLANCE_FILE = "glance.md"  # in book/generated; included by book/intro.md


def write_glance(paths, runs_root, profile: str) -> Path:
    """The intro's results-at-a-glance table, from the headline numbers the chapters recorded
    (:func:`record_glance`) when they were executed, and how much of each committed plan is
    done (:func:`hinas.book.campaigns.plan_progress`)."""
    data = _recorded(runs_root, profile)
    lines = [f"Measured by this build (profile `{profile}`); *published* numbers are the paper's, on its data "
             "(BSD200), and are not comparable with crops of the embedded photos.", ""]
    rows = [r for chapter in sorted(data) for r in data[chapter] if "claim" not in r]
    if any("committed" in str(r.get("chapter")) for r in rows):
        lines[0] += (" Rows marked *paper plan, committed* are not measured by this build: they are the paper "
                     "plan's results committed under `results/` (BSD200 itself; trained and evaluated on the "
                     "devices chapter 6 names), comparable with the published number under the protocol they name.")
    if rows:
        lines += ["| chapter | what | measured here | published |", "|---|---|---|---|"]
        for r in rows:
            cells = [str(r.get(k, "–")).replace("|", "\\|") for k in ("chapter", "what", "measured", "published")]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append("No chapter has recorded its results yet: build the book with its notebooks executed.")
    lines += ["", *plan_progress(paths.root)]  # how far the GPU campaign has come
    paths.generated.mkdir(parents=True, exist_ok=True)
    out = paths.generated / GLANCE_FILE
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


CLAIMS_FILE = "claims.md"  # in book/generated; included at the top of book/intro.md


def write_claims(paths, runs_root, profile: str) -> Path:
    """The intro's "shown and not shown" table: each of the paper's claims with this build's
    evidence and verdict (:mod:`hinas.book.claims`), from the committed results and the claim
    rows the chapters recorded."""
    from hinas.book import claims

    data = _recorded(runs_root, profile)
    recorded = [r for chapter in sorted(data) for r in data[chapter] if "claim" in r]
    table = claims.claims_table(claims.committed_claims(paths.root) + recorded)
    lines = [f"Each claim of the paper, with what this build (profile `{profile}`) and the results committed under "
             "`results/` show about it. The verdicts are computed from those numbers under the rule below the table.",
             "", *claims.claims_markdown(table)]
    paths.generated.mkdir(parents=True, exist_ok=True)
    out = paths.generated / CLAIMS_FILE
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
