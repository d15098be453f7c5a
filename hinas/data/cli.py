"""``hinas data check``: which datasets are present, how many images, what is wrong and how to get
what is missing; ``hinas data download``: data_scripts/download.py behind the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hinas.errors import DataError, HinasError


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("data", help="inspect the benchmark datasets (hinas data check)")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    c = sub.add_parser("check", help="list the datasets found under the data root, with image counts and problems")
    c.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the datasets (default: $HINAS_DATA, else only the embedded images)")
    c.add_argument("--decode", action=argparse_bool(), default=True,
                   help="decode every image to find corrupt ones (default: on; --no-decode only counts files)")
    c.add_argument("--checksums", action="store_true",
                   help="also verify MANIFEST.sha256 in the data root when there is one")
    c.add_argument("--dataset", dest="datasets", action="append", default=[], metavar="NAME",
                   help="a dataset you need (repeatable); the check fails when it is missing")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_check_command)
    c.epilog = ("exit status: 0 when every standard dataset (" + ", ".join(STANDARD) + ") and every --dataset is "
                "present and readable, 1 otherwise (the output says how to get what is missing), 2 on bad input")
    d = sub.add_parser("download", help="download or import datasets (runs data_scripts/download.py)",
                       description="Download the benchmark datasets into the data root, or import a local copy "
                                   "(--from). The same program as 'python data_scripts/download.py'.")
    d.add_argument("datasets", nargs="*", metavar="NAME", help="BSDS500, Set5, Set14, Urban100, DIV2K, Manga109 "
                                                               "(default: all)")
    d.add_argument("--root", "--data-root", dest="root", default=None, metavar="DIR",
                   help="data root to fill (default: $HINAS_DATA)")
    d.add_argument("--from", dest="local", default=None, metavar="PATH",
                   help="import a local folder or archive instead of downloading")
    d.add_argument("--list", action="store_true", help="list the datasets and their sources")
    d.set_defaults(func=_download_command)

    def _no_action(args):
        p.print_help()
        return 2

    p.set_defaults(func=_no_action)
    c.set_defaults(func=_check_command)


# The paper's benchmark sets: a missing one makes ``hinas data check`` fail. Not listed (reported,
# never failing): BSD68/Set12 (extra DnCNN-style test sets), DIV2K (SR training falls back to
# BSDS500), Manga109 (licence needed).
STANDARD = ("BSDS500-train", "BSDS500-val", "BSDS500-test", "Set5", "Set14", "B100", "Urban100")
DOWNLOADABLE = ("BSDS500", "Set5", "Set14", "Urban100", "DIV2K")  # what data_scripts/download.py fetches


def _canonical_or_fail(name: str, canonical_name) -> str:
    from hinas.data.datasets import DATASETS

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


def _download_command(args) -> int:
    """Run data_scripts/download.py's ``main`` with the same arguments (one copy of the mechanism)."""
    import runpy

    script = Path(__file__).resolve().parents[2] / "data_scripts" / "download.py"
    if not script.is_file():
        raise HinasError(f"{script}: not found; 'hinas data download' runs the source checkout's "
                         f"data_scripts/download.py (install hinas with 'pip install -e .' from a clone)")
    argv = list(args.datasets)
    if args.root:
        argv += ["--root", args.root]
    if args.local:
        argv += ["--from", args.local]
    if args.list:
        argv.append("--list")
    module = runpy.run_path(str(script), run_name="hinas_data_download")
    return int(module["main"](argv) or 0)


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def check(data_root=None, decode: bool = True, checksums: bool = False, wanted=()) -> dict:
    """Inspect the data root: ``{data_root, embedded, datasets: {name: {...}}, problems: [...],
    missing: [{dataset, how}], ok}``; ``ok`` is False when a standard dataset or one of
    ``wanted`` is missing, or an image is unusable."""
    from hinas.data.datasets import (DATASETS, canonical_name, list_datasets, list_image_files, read_image,
                                     resolve_data_root)

    wanted = [_canonical_or_fail(n, canonical_name) for n in wanted]
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
            bad = []
            if d["path"] in seen_dirs:  # B100 and BSDS500-val share a folder
                bad = seen_dirs[d["path"]]
            else:
                for f in list_image_files(d["path"]):
                    try:
                        img = read_image(f)
                    except DataError as exc:
                        bad.append(str(exc))
                        continue
                    if DATASETS[name]["kind"] == "rgb" and img.ndim == 2 and not DATASETS[name].get("allows_grey"):
                        bad.append(f"{f}: grey image in a colour dataset; convert it to RGB or remove it")
                seen_dirs[d["path"]] = bad
            d["problems"] = bad
            problems.extend(bad)
    missing = missing_datasets(info, root, wanted)
    checksum_report = None
    if checksums and root is not None:
        checksum_report = _verify_manifest(root)
        problems.extend(checksum_report["problems"])
    out = {"data_root": str(root) if root else None, "embedded": root is None,
           "datasets": info, "problems": problems, "missing": missing, "ok": not missing and not problems}
    if checksum_report is not None:
        out["checksums"] = {k: v for k, v in checksum_report.items() if k != "problems"}
    if root is None:
        out["note"] = ("no data root (--data-root or HINAS_DATA): only the embedded scikit-image images are "
                       "available; their results are not comparable with the paper")
    return out


def _verify_manifest(root: Path) -> dict:
    manifest = root / "MANIFEST.sha256"
    if not manifest.is_file():
        return {"manifest": None, "checked": 0, "problems": []}
    problems, checked = [], 0
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        digest, _, rel = line.strip().partition("  ")
        rel = rel.lstrip("*")
        path = (root / rel).resolve()
        if root.resolve() not in path.parents:
            problems.append(f"{manifest}: entry {rel!r} points outside the data root")
            continue
        if not path.is_file():
            problems.append(f"{path}: listed in MANIFEST.sha256 but missing")
            continue
        h = hashlib.sha256(path.read_bytes()).hexdigest()
        checked += 1
        if h != digest:
            problems.append(f"{path}: checksum mismatch (corrupt or modified); re-download it")
    return {"manifest": str(manifest), "checked": checked, "problems": problems}


def _check_command(args) -> int:
    from hinas.cli import print_json

    res = check(args.data_root, decode=args.decode, checksums=args.checksums, wanted=args.datasets)
    if args.json:
        print_json(res)
        return 0 if res["ok"] else 1
    print(f"data root: {res['data_root'] or '(none: embedded scikit-image images only)'}")
    for name, d in res["datasets"].items():
        if d.get("embedded"):
            print(f"  {name:15s} embedded   {d['images']:4d} images ({', '.join(d['members'])})")
        elif d["found"]:
            flag = "" if d["images"] == d["expected"] else f"  (expected {d['expected']})"
            print(f"  {name:15s} found      {d['images']:4d} images  {d['path']}{flag}")
        else:
            print(f"  {name:15s} missing")
    if res["problems"]:
        print(f"{len(res['problems'])} problem(s):")
        for p in res["problems"]:
            print(f"  - {p}")
    else:
        print("no problems found")
    if res.get("note"):
        print(res["note"])
    if res["missing"]:
        print(f"{len(res['missing'])} dataset(s) missing; to get them:")
        by_how: dict[str, list[str]] = {}
        for m in res["missing"]:
            by_how.setdefault(m["how"], []).append(m["dataset"])
        for how, names in by_how.items():
            print(f"  - {', '.join(names)}: {how}")
    return 0 if res["ok"] else 1


__all__ = ["register_cli", "check", "HinasError"]
