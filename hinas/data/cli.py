"""``hinas data check``: which datasets are present, how many images, and what is wrong."""

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
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_check_command)

    def _no_action(args):
        p.print_help()
        return 2

    p.set_defaults(func=_no_action)
    c.set_defaults(func=_check_command)


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def check(data_root=None, decode: bool = True, checksums: bool = False) -> dict:
    """Inspect the data root: ``{data_root, embedded, datasets: {name: {...}}, problems: [...]}``."""
    from hinas.data.datasets import DATASETS, list_datasets, list_image_files, read_image, resolve_data_root

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
    checksum_report = None
    if checksums and root is not None:
        checksum_report = _verify_manifest(root)
        problems.extend(checksum_report["problems"])
    out = {"data_root": str(root) if root else None, "embedded": root is None,
           "datasets": info, "problems": problems}
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

    res = check(args.data_root, decode=args.decode, checksums=args.checksums)
    if args.json:
        print_json(res)
        return 0
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
    return 0


__all__ = ["register_cli", "check", "HinasError"]
