"""``hinas data check``: which datasets are present, how many images, what is wrong and how to get
what is missing (:mod:`hinas.data.checks`); ``hinas data download``: data_scripts/download.py
behind the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

from hinas.cli import PathArg
from hinas.errors import HinasError
from hinas.safeio import check_names

__all__ = ["register_cli"]


def register_cli(subparsers) -> None:
    from hinas.data.checks import STANDARD

    p = subparsers.add_parser("data", help="inspect the benchmark datasets (hinas data check)")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="list the datasets found under the data root, with image counts and problems")
    c.add_argument("--data-root", default=None, metavar="DIR", action=PathArg, want="folder",
                   help="folder holding the datasets (default: $HINAS_DATA, else only the embedded images)")
    c.add_argument("--decode", action=argparse.BooleanOptionalAction, default=True,
                   help="decode every image to find corrupt ones (default: on; --no-decode only counts files)")
    c.add_argument("--checksums", action="store_true",
                   help="also verify MANIFEST.sha256 in the data root when there is one")
    c.add_argument("--dataset", dest="datasets", action=_AppendName, default=[], metavar="NAME",
                   help="a dataset you need (repeatable); the check fails when it is missing")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_check_command)
    c.epilog = ("exit status: 0 when every standard dataset (" + ", ".join(STANDARD) + ") and every --dataset is "
                "present and readable, 1 otherwise (the output says how to get what is missing), 2 on bad input")
    d = sub.add_parser("download", help="download or import datasets (runs data_scripts/download.py)",
                       description="Download the benchmark datasets into the data root, or import a local copy "
                                   "(--from). The same program as 'python data_scripts/download.py'.")
    d.add_argument("datasets", nargs="*", default=[], metavar="NAME", action=PathArg, want="name", what="dataset name",
                   help="BSDS500, Set5, Set14, Urban100, DIV2K, Manga109 (default: all)")
    d.add_argument("--root", "--data-root", dest="root", default=None, metavar="DIR", action=PathArg, want="folder",
                   missing_ok=True, help="data root to fill (default: $HINAS_DATA)")
    d.add_argument("--from", dest="local", default=None, metavar="PATH", action=PathArg, want="any",
                   help="import a local folder or archive instead of downloading")
    d.add_argument("--manifest", default=None, metavar="FILE", action=PathArg, want="file",
                   help="check the sets against this 'SHA256  FOLDER/NAME' list instead of "
                        "data_scripts/reference_files.sha256 (a set it does not list must hold its image count)")
    d.add_argument("--list", action="store_true", help="list the datasets and their sources")
    d.set_defaults(func=_download_command)
    d.epilog = ("a set is installed only when it is complete against its manifest (the images and SHA-256 it "
                "lists, or the set's image count), checked before anything is written, and never a link")


class _AppendName(PathArg):
    """``--dataset NAME`` (repeatable): each a non-empty name."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, want="name", what="dataset name", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        name = check_names(values, option_string or "--dataset", self.what)
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), name])


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
    if args.manifest:
        argv += ["--manifest", args.manifest]
    if args.list:
        argv.append("--list")
    module = runpy.run_path(str(script), run_name="hinas_data_download")
    return int(module["main"](argv, prog="hinas") or 0)


def _check_command(args) -> int:
    from hinas.cli import print_json
    from hinas.data.checks import check

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
