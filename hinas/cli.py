"""The ``hinas`` command line.

Each area of the library registers its own sub-commands through a ``register_cli(subparsers)``
function, so this file only wires them together and turns user errors into one line on
stderr with exit code 2 (never a traceback from deep inside torch).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from hinas.errors import HinasError

# Modules that contribute sub-commands, in the order they appear in ``hinas --help``.
COMMAND_MODULES = (
    "hinas.model_cli",  # describe, decode, draw
    "hinas.bench",  # bench ...
    "hinas.data.cli",  # data ...
    "hinas.evaluation",  # eval ...
    "hinas.engine_cli",  # search, train
    "hinas.campaign",  # campaign run/status/plans, verify
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hinas",
        description="HiNAS: hierarchical NAS for image restoration (search, train, evaluate).",
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not an absent module
                raise
            continue
        module.register_cli(subparsers)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hinas")
    except PackageNotFoundError:  # running from a source tree
        return "unknown"


def print_json(obj) -> None:
    """Print one JSON object on stdout (the machine-readable contract of ``--json``)."""
    print(json.dumps(obj, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except HinasError as exc:
        print(f"hinas: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hinas: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
