"""The ``hinas`` command line.

Each area of the library registers its own sub-commands through a ``register_cli(subparsers)``
function, so this file only wires them together and turns user errors into one line on
stderr with exit code 2 (never a traceback from deep inside torch): every
:class:`~hinas.errors.HinasError`, every file-system failure (a full disk, a permission, a
folder where a file was expected), absurd nesting and absurd sizes. Anything else is a bug
in hinas and keeps its traceback (exit 1).

Every input is checked before the command runs, by one rule per kind: paths and names through
:class:`PathArg` (:func:`hinas.safeio.check_path`: never empty, never a pipe or a device, a folder
where a folder is wanted and a file where a file is), usage errors through :class:`OneLineParser`;
each refusal is one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

# Before any command imports torch (and its OpenMP): idle threads sleep instead of spinning, as
# in the book and the tests. On shared cores spinning made small ops many times slower (measured:
# `hinas bench supernet-memory` time ratio 7.53 without, 1.77 with); the user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hinas.errors import HinasError
from hinas.safeio import check_names, check_path, one_line, quote

# Modules that contribute sub-commands, in the order they appear in ``hinas --help``.
COMMAND_MODULES = (
    "hinas.cli.model",  # describe, decode, draw
    "hinas.cli.bench",  # bench ...
    "hinas.cli.data",  # data ...
    "hinas.cli.evaluation",  # eval ...
    "hinas.cli.engine",  # search, train
    "hinas.cli.restore",  # restore
    "hinas.cli.export",  # export
    "hinas.cli.config",  # config show
    "hinas.cli.campaign",  # campaign run/status/plans/seal, verify
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with where to look) rather than usage + error; its
    sub-command parsers are OneLineParsers too (argparse makes them of the parent's class)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)}; see '{self.prog} --help'\n")


class PathArg(argparse.Action):
    """An argument that is a path or a name, checked by the one rule as it is parsed, before any
    command runs: ``add_argument("--out", action=PathArg, want="folder", missing_ok=True)``.

    ``want`` is ``"file"``, ``"folder"`` or ``"any"`` (:func:`hinas.safeio.check_path`; ``missing_ok``:
    an output, or an input whose reader names what is missing: a genotype, a config, a run folder),
    or ``"name"`` / ``"names"`` (one name, or comma-separated ones, never empty:
    :func:`hinas.safeio.check_names`; ``what`` says what they name). A refusal is a
    :class:`HinasError` naming the flag: ``hinas: error: --results '': an empty path; ...`` (exit 2)."""

    def __init__(self, option_strings, dest, want: str = "file", missing_ok: bool = False, what: str = "name",
                 **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.want, self.missing_ok, self.what = want, missing_ok, what

    def __call__(self, parser, namespace, values, option_string=None):
        flag = option_string or self.metavar or self.dest.upper()

        def check(value):
            if self.want in ("name", "names"):
                return check_names(value, flag, self.what, listed=self.want == "names", optional=not self.required)
            return check_path(value, self.want, missing_ok=self.missing_ok, flag=flag)

        if values is not None:  # an absent optional positional keeps its default
            values = [check(v) for v in values] if isinstance(values, list) else check(values)
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
    try:
        args = parser.parse_args(argv)
    except HinasError as exc:  # a path or a name refused as it was parsed (PathArg)
        print(f"hinas: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.error("give a command")
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("hinas: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # noqa: BLE001 - sorted into user errors (2) and bugs (re-raised, 1)
        message = user_error_message(exc)
        if message is None:
            raise
        print(f"hinas: error: {one_line(message)}", file=sys.stderr)
        return 2
    return int(result or 0)


def user_error_message(exc: BaseException) -> str | None:
    """One line for a failure the user can fix (bad input, the file system, absurd sizes); None for a bug."""
    if isinstance(exc, HinasError):
        return str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, (BlockingIOError, ChildProcessError)):
        return _os_error_message(exc)
    if isinstance(exc, RecursionError):
        return "an input file is nested too deeply to read; it was not written by hinas"
    if isinstance(exc, RuntimeError) and any(m in str(exc) for m in ("out of memory", "can't allocate memory",
                                                                     "not enough memory")):
        return ("not enough memory for what was asked (out of memory in torch); use a smaller batch, patch, "
                "f or image size, or a device with more memory")
    if isinstance(exc, MemoryError):
        return "not enough memory for what was asked (a size, f, batch or image too large); ask for less"
    return None


def _os_error_message(exc: OSError) -> str:
    import errno

    where = quote(exc.filename) if exc.filename is not None else "a file"
    if exc.filename2 is not None:
        where += f" -> {quote(exc.filename2)}"
    reason = exc.strerror or exc.__class__.__name__
    fixes = {
        errno.ENOSPC: "free some disk space (or choose another --out / data root) and run again; "
                      "a run continues with --resume",
        errno.EDQUOT: "free some space in your quota and run again",
        errno.EFBIG: "the file is larger than this system allows (ulimit -f?); raise the limit or free space",
        errno.EACCES: "check the permissions, or choose a path you can write to",
        errno.EPERM: "check the permissions, or choose a path you can write to",
        errno.EROFS: "the file system is read-only; choose another path",
        errno.EISDIR: "this is a folder; give a file",
        errno.ENOTDIR: "a part of this path is a file, not a folder; fix the path",
        errno.ENOENT: "check the path",
        errno.EEXIST: "it already exists; choose another name",
        errno.ENAMETOOLONG: "use a shorter name",
    }
    fix = fixes.get(exc.errno, "check the path, the permissions and the free disk space")
    return f"{where}: {reason}; {fix}"


if __name__ == "__main__":
    raise SystemExit(main())
