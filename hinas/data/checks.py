"""What ``hinas data check`` reports, and the image checks ``hinas data download`` applies.

* :func:`check` inspects a data root: which datasets are present, how many images, what is
  wrong (unreadable, 16-bit, alpha, oversized or grey-in-colour images, checksum mismatches
  against ``MANIFEST.sha256``) and how to get what is missing (:func:`how_to_get`).
* :func:`image_problem` is the per-image test both use: one line naming the file, or None.
  ``data_scripts/download.py`` refuses to install a set holding an image it rejects, so a
  download never installs what ``hinas data check`` would then report.

The command line lives in :mod:`hinas.cli.data`.
"""

from __future__ import annotations

import re
from pathlib import Path

from hinas.errors import DataError, HinasError
from hinas.safeio import quote, sha256_file

__all__ = ["STANDARD", "DOWNLOADABLE", "check", "how_to_get", "missing_datasets", "image_problem",
           "verify_manifest", "MAX_MANIFEST_BYTES"]

# The paper's benchmark sets: a missing one makes ``hinas data check`` fail. Not listed (reported,
# never failing): BSD68/Set12 (extra DnCNN-style test sets), DIV2K (SR training falls back to
# BSDS500), Manga109 (licence needed).
STANDARD = ("BSDS500-train", "BSDS500-val", "BSDS500-test", "Set5", "Set14", "B100", "Urban100")
DOWNLOADABLE = ("BSDS500", "Set5", "Set14", "Urban100", "DIV2K")  # what data_scripts/download.py fetches

# A checksum list is one line per file; the reference data's has ~1,500 lines (~150 KB).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_MANIFEST_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


def _canonical_or_fail(name: str) -> str:
    from hinas.data.datasets import DATASETS, canonical_name

    canon = canonical_name(name)
    if canon is None:
        raise HinasError(f"--dataset {name}: unknown dataset; known: {', '.join(DATASETS)}, embedded-train/-val/-test")
    return canon


def how_to_get(name: str, root) -> str:
    """One line saying how to obtain dataset ``name`` (download command, or --from a copy)."""
    from hinas.data.datasets import MANGA109_HOWTO, _download_name

    target = f"--root {root}" if root else "--root DIR (then set HINAS_DATA=DIR)"
    source = _download_name(name)
    if name == "Manga109":
        return MANGA109_HOWTO
    if source in DOWNLOADABLE:
        return (f"hinas data download {source} {target}  (= python data_scripts/download.py {source} ...; "
                f"add --from PATH to import a local copy or archive)")
    return f"not downloadable here: import your copy with 'hinas data download {source} --from PATH {target}'"


def missing_datasets(info: dict, root, wanted) -> list[dict]:
    """Standard datasets and ``wanted`` ones that are absent, each with how to get it."""
    names = list(STANDARD) + [w for w in wanted if w not in STANDARD]
    out = []
    for name in names:
        d = info.get(name)
        if d is None or d.get("embedded") or d["found"]:
            continue
        out.append({"dataset": name, "how": how_to_get(name, root)})
    return out


def image_problem(path, dataset: str | None = None) -> str | None:
    """Why image ``path`` is unusable in ``dataset`` (one line naming it), or None when it is fine.

    The checks of the loaders (:func:`hinas.data.datasets.read_image`: readable, 8-bit grey or RGB,
    no alpha, at most ``MAX_IMAGE_PIXELS`` pixels), plus: no grey image in a colour dataset
    that does not allow them.
    """
    from hinas.data.datasets import DATASETS, read_image

    try:
        img = read_image(path)
    except DataError as exc:
        return str(exc)
    info = DATASETS.get(dataset or "", {})
    if info.get("kind") == "rgb" and img.ndim == 2 and not info.get("allows_grey"):
        return f"{quote(path)}: grey image in a colour dataset; convert it to RGB or remove it"
    return None


def check(data_root=None, decode: bool = True, checksums: bool = False, wanted=()) -> dict:
    """Inspect the data root: ``{data_root, embedded, datasets: {name: {...}}, problems: [...],
    missing: [{dataset, how}], ok}``; ``ok`` is False when a standard dataset or one of
    ``wanted`` is missing, or an image is unusable."""
    from hinas.data.datasets import list_datasets, list_image_files, resolve_data_root

    wanted = [_canonical_or_fail(n) for n in wanted]
    root = resolve_data_root(data_root)
    info = list_datasets(root)
    problems: list[str] = []
    seen_dirs: dict[str, list[str]] = {}
    for name, d in info.items():
        if d.get("embedded"):
            continue
        if not d["found"]:
            continue
        if d["images"] != d["expected"]:
            problems.append(f"{name}: {d['images']} images in {d['path']}, expected {d['expected']}")
        if decode:
            if d["path"] in seen_dirs:  # B100 and BSDS500-val share a folder
                bad = seen_dirs[d["path"]]
            else:
                bad = [p for p in (image_problem(f, name) for f in list_image_files(d["path"])) if p]
                seen_dirs[d["path"]] = bad
            d["problems"] = bad
            problems.extend(bad)
    missing = missing_datasets(info, root, wanted)
    checksum_report = None
    if checksums and root is not None:
        checksum_report = verify_manifest(root)
        problems.extend(checksum_report["problems"])
    out = {"data_root": str(root) if root else None, "embedded": root is None,
           "datasets": info, "problems": problems, "missing": missing, "ok": not missing and not problems}
    if checksum_report is not None:
        out["checksums"] = {k: v for k, v in checksum_report.items() if k != "problems"}
    if root is None:
        out["note"] = ("no data root (--data-root or HINAS_DATA): only the embedded scikit-image images are "
                       "available; their results are not comparable with the paper")
    return out


def _manifest_entries(manifest: Path) -> list[tuple[str, str]]:
    """(digest, relative path) per line of a ``sha256sum`` list; one line naming the file when it is
    not one (binary, not UTF-8, too large, a garbled line)."""
    q = quote(manifest)
    fix = "regenerate it (cd DATA_ROOT && find . -type f ! -name MANIFEST.sha256 | sort | xargs sha256sum > " \
          "MANIFEST.sha256) or delete it"
    size = manifest.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise DataError(f"{q}: {size} bytes is too large for a checksum list (limit {MAX_MANIFEST_BYTES}); {fix}")
    raw = manifest.read_bytes()
    if b"\0" in raw:
        raise DataError(f"{q}: binary data, not a sha256sum checksum list; {fix}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{q}: not UTF-8 text, not a sha256sum checksum list; {fix}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _MANIFEST_LINE.fullmatch(line.strip())
        if m is None:
            raise DataError(f"{q}: line {number} is not 'SHA256  PATH' (a garbled checksum list); {fix}")
        entries.append((m.group(1).lower(), m.group(2)))
    return entries


def verify_manifest(root: Path) -> dict:
    """Compare the files under ``root`` with ``root/MANIFEST.sha256`` when there is one."""
    manifest = root / "MANIFEST.sha256"
    if not manifest.is_file():
        return {"manifest": None, "checked": 0, "problems": []}
    problems, checked = [], 0
    base = root.resolve()
    for digest, rel in _manifest_entries(manifest):
        try:
            path = (root / rel).resolve()
        except (OSError, RuntimeError, ValueError):  # a link loop, a NUL byte
            problems.append(f"{quote(manifest)}: entry {rel!r} is not a usable path")
            continue
        if base not in path.parents:
            problems.append(f"{quote(manifest)}: entry {rel!r} points outside the data root")
            continue
        if not path.is_file():
            problems.append(f"{quote(path)}: listed in MANIFEST.sha256 but missing")
            continue
        checked += 1
        if sha256_file(path) != digest:
            problems.append(f"{quote(path)}: checksum mismatch (corrupt or modified); re-download it")
    return {"manifest": str(manifest), "checked": checked, "problems": problems}
