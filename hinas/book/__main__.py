"""``python -m hinas.book build|execute`` (what ``make book`` runs): :func:`hinas.book.build.main`
under the command line's rules for inputs. Its parser is built as a :class:`~hinas.cli.OneLineParser`
(a usage error is one line, exit 2) whose path and name options are :class:`~hinas.cli.PathArg`\\ s,
checked before anything runs or is written: ``--only ''`` is not "every chapter", ``--runs-root``
and ``--results`` are folders (never a file, a pipe or a device), ``--data-root`` an existing one."""

import argparse
import sys
import types

from hinas.book import build
from hinas.cli import OneLineParser, PathArg
from hinas.errors import HinasError
from hinas.safeio import one_line

# the options of build.main's parser that name paths or notebooks, as PathArg checks them
CHECKED = {
    "--results": dict(want="folder", missing_ok=True),
    "--runs-root": dict(want="folder", missing_ok=True),
    "--data-root": dict(want="folder"),
    "--only": dict(want="names", what="notebook number or name"),
}


class BookParser(OneLineParser):
    """The book's parser: one-line usage errors, and :data:`CHECKED` options checked as they are parsed."""

    def add_argument(self, *names, **kwargs):
        checked = next((CHECKED[n] for n in names if n in CHECKED), None)
        if checked is not None and "action" not in kwargs and "type" not in kwargs:
            kwargs = dict(kwargs, action=PathArg, **checked)
        return super().add_argument(*names, **kwargs)


def main(argv=None) -> int:
    # build.main builds its parser from its module's ``argparse``: give it this one (and nothing else)
    build.argparse = types.SimpleNamespace(**{**vars(argparse), "ArgumentParser": BookParser})
    try:
        return build.main(argv)
    except HinasError as exc:  # an input refused while parsing (PathArg), before anything ran
        print(f"python -m hinas.book: error: {one_line(str(exc))}", file=sys.stderr, flush=True)
        return 2
    finally:
        build.argparse = argparse


if __name__ == "__main__":
    sys.exit(main())
