"""Reading untrusted files within bounds, and naming them safely in messages.

Every JSON or YAML file a user hands to hinas (genotypes, ``network.json``, config files)
goes through :func:`load_json_file` / :func:`load_yaml_file`: a size cap before reading,
a nesting-depth cap after parsing, and one :class:`~hinas.errors.HinasError` line naming the
file for anything wrong (missing, a folder, unreadable, not UTF-8, malformed, too deep,
absurd integers), never a traceback. :func:`quote` prints a file name without raw control
characters, so a name holding a newline or an escape code cannot forge terminal output.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
from pathlib import Path

from hinas.errors import HinasError

MAX_JSON_BYTES = 4 * 1024 * 1024  # a genotype is ~2 KB, a network.json ~3 KB
MAX_YAML_BYTES = 1 * 1024 * 1024
MAX_DEPTH = 32

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def quote(name) -> str:
    """``name`` as text safe to print: plain when it is, else a Python-escaped repr."""
    s = str(name)
    return repr(s) if _CONTROL.search(s) else s


def one_line(message: str) -> str:
    """Escape control characters so a message is exactly one printable line."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), str(message))


@contextlib.contextmanager
def names_file(path):
    """Give an ``OSError`` raised without a file name (a write on a full disk) the name of ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from None
        raise


def read_text_bounded(path, max_bytes: int, what: str) -> str:
    """The UTF-8 text of ``path``, refusing folders, missing files and files over ``max_bytes``."""
    path = Path(path)
    q = quote(path)
    try:
        if path.is_dir():
            raise HinasError(f"{q}: is a folder, not a {what} file; give the file inside it")
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise HinasError(f"{q}: not a regular file (a device, pipe or socket); give a {what} file")
        size = st.st_size
    except FileNotFoundError:
        raise HinasError(f"{q}: no such {what} file; check the path") from None
    except OSError as exc:
        raise HinasError(f"{q}: cannot read this {what} file ({exc.strerror or exc.__class__.__name__})") from None
    if size > max_bytes:
        raise HinasError(f"{q}: {size} bytes is too large for a {what} file (limit {max_bytes}); "
                         f"give the file hinas wrote")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise HinasError(f"{q}: cannot read this {what} file ({exc.strerror or exc.__class__.__name__})") from None
    if len(raw) > max_bytes:
        raise HinasError(f"{q}: too large for a {what} file (limit {max_bytes} bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HinasError(f"{q}: not a UTF-8 text file; a {what} file is plain text") from None


def check_depth(obj, source: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse structures nested deeper than ``max_depth`` (iteratively: no recursion to blow)."""
    stack, seen = [(obj, 1)], set()
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            if d > max_depth:
                raise HinasError(f"{source}: nested deeper than {max_depth} levels; not a file hinas wrote")
            if id(o) in seen:  # YAML aliases share objects: visit each once (no 'billion laughs')
                continue
            seen.add(id(o))
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))


def parse_json(text: str, source: str, what: str = "JSON"):
    """``json.loads`` that turns every failure into one line naming ``source``."""
    try:
        data = json.loads(text, parse_constant=lambda c: _bad_constant(c, source),
                          parse_float=lambda t: _finite_float(t, source))
    except json.JSONDecodeError as exc:
        raise HinasError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}); "
                         f"a {what} is a JSON file written by hinas") from None
    except RecursionError:
        raise HinasError(f"{source}: nested too deeply to be a {what}; not a file hinas wrote") from None
    except ValueError as exc:  # e.g. an integer with thousands of digits
        raise HinasError(f"{source}: unusable value in the JSON ({str(exc)[:80]}); not a file hinas wrote") from None
    check_depth(data, source)
    return data


def _bad_constant(name: str, source: str):
    raise HinasError(f"{source}: the JSON holds {name}; every number must be finite")


def _finite_float(text: str, source: str) -> float:
    """A JSON number as a float, refusing one beyond float's range (``1e999`` reads as infinity)."""
    try:
        return finite_number(text, source)
    except HinasError:
        raise HinasError(f"{source}: the JSON holds {text[:24]}, beyond any finite number; "
                         f"every number must be finite") from None


def load_json_file(path, what: str = "JSON", max_bytes: int = MAX_JSON_BYTES):
    return parse_json(read_text_bounded(path, max_bytes, what), quote(path), what)


def load_yaml_file(path, what: str = "config", max_bytes: int = MAX_YAML_BYTES):
    """YAML (safe loader only) within bounds; the document as Python objects."""
    import yaml

    text = read_text_bounded(path, max_bytes, what)
    source = quote(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = one_line(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
        raise HinasError(f"{source}: not valid YAML ({first}); fix the file or start from hinas/configs/*.yaml") from None
    except RecursionError:
        raise HinasError(f"{source}: nested too deeply to be a {what} file") from None
    check_depth(data, source)
    return data


def is_finite_number(x) -> bool:
    """Whether ``x`` is a finite int or float (not a bool, not None, not NaN or infinite, not an
    integer beyond float's range, which JSON allows): the one yes/no finiteness test."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def finite_number(value, name: str, *, lo=None, hi=None, lo_open=False, hi_open=False,
                  bools: bool = True, numbers_only: bool = False, error: type = HinasError) -> float:
    """``value`` as a finite float within bounds, or ``error`` (a :class:`HinasError` subclass) naming ``name``.

    The one finite-number check (JSON numbers, settings, plan keys, command-line values): what
    ``float()`` cannot read, NaN and the infinities are refused; ints are accepted. ``bools=False``
    refuses True/False (a YAML ``yes`` is no number); ``numbers_only=True`` refuses anything but an
    int or a float (text too: a plan's numbers are written as numbers). ``lo``/``hi`` bound the
    value, closed unless ``lo_open``/``hi_open``.
    """
    if (not bools and isinstance(value, bool)) or (numbers_only and not isinstance(value, (int, float))):
        raise error(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise error(f"{name} must be a finite number, got {value!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise error(f"{name} must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise error(f"{name} must be {'<' if hi_open else '<='} {hi:g}, got {v:g}")
    return v


def sha256_file(path) -> str:
    """The hex SHA-256 of a file's content (how results and weights are trusted: by content)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# -- the one pair of atomic writers (text; bytes made durable) every module uses
def open_fresh_temp(tmp: Path, mode: str):
    """``tmp`` opened as a new regular file: whatever stands at the temp name (a stale half from a
    crash, or a planted link) is removed first, and the file is created exclusively without
    following a link, so a write never lands outside the folder through the temp name."""
    if tmp.is_symlink() or tmp.is_file():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    return os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8")


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` through a temp file and a rename: a crash or a full disk leaves the old
    file or the new one, never half, and no stray temp file; errors name the file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with names_file(tmp), open_fresh_temp(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves the old file, not a stray half
        raise


def write_bytes_durably(path, data) -> None:
    """Bytes through a temp file, fsync and a rename (checkpoints, weights): durable and whole."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with names_file(tmp), open_fresh_temp(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- one rule for every path given on the command line (hinas.cli's PathArg applies it to each)
_PATH_WANTS = {"file": "file", "folder": "folder", "any": "file or folder"}


def check_path(value, want: str = "file", *, missing_ok: bool = False, flag: str = "path") -> str:
    """``value``, a path given as ``flag``, checked before anything is read or written: not empty
    (``''`` is not "here"), no pipe, device or socket, a folder where a folder is wanted (``want``
    ``"folder"``), a regular file where a file is (``"file"``), either for ``"any"``; with
    ``missing_ok`` (an output, or an input whose reader names what is missing) it may be absent, when
    the folder it would be in can be (no file on the way). Returns the path with ``~`` expanded; a
    :class:`HinasError` line naming ``flag`` otherwise."""
    what = _PATH_WANTS[want]
    text = str(value)
    if not text.strip():
        here = " ('.' for the current folder)" if want != "file" else ""
        raise HinasError(f"{flag} {text!r}: an empty path; give a {what}{here}")
    path = Path(os.path.expanduser(text))
    where = f"{flag} {quote(text)}"
    try:
        mode = path.stat().st_mode  # follows links: what would be opened
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except (OSError, ValueError) as exc:
        raise HinasError(f"{where}: cannot be looked at ({getattr(exc, 'strerror', None) or exc}); "
                         f"fix the path or its permissions") from None
    if mode is None:
        blocker = _blocking_ancestor(path)
        if blocker is not None:
            raise HinasError(f"{where}: {quote(blocker)} is {_kind_of(blocker)}, not a folder; fix the path")
        if path.is_symlink():
            raise HinasError(f"{where}: a link to nothing ({quote(os.readlink(path))}); fix the link or the path")
        if not missing_ok:  # (a missing data root has always been "not a folder")
            raise HinasError(f"{where}: no such {what}{' (the path is not a folder)' if want == 'folder' else ''}; "
                             f"check the path")
        if want == "file" and text.endswith(("/", os.sep)):
            raise HinasError(f"{where}: ends in '/', a folder; give a file name")
        return str(path)
    if stat.S_ISDIR(mode) and want != "file" or stat.S_ISREG(mode) and want != "folder":
        return str(path)
    if stat.S_ISDIR(mode):
        raise HinasError(f"{where}: is a folder; give a file{' name' if missing_ok else ' (one inside it)'}")
    if stat.S_ISREG(mode):
        raise HinasError(f"{where}: is a file, not a folder; give a folder")
    raise HinasError(f"{where}: is {_kind_of(path)}, not a {what}; give a {'' if want == 'folder' else 'regular '}{what}")


def _kind_of(path) -> str:
    """What ``path`` is, in words, for messages (a file, a named pipe, a device, ...)."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return "unreadable"
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _blocking_ancestor(path: Path):
    """The nearest existing ancestor of a missing ``path`` when it is not a folder (else None)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_names(value, flag: str, what: str = "name", *, listed: bool = False, optional: bool = True) -> str:
    """A name given as ``flag`` (an item, a dataset; with ``listed``, comma-separated names): each
    one non-empty, so ``''`` never stands for "all of them" (what leaving an ``optional`` flag out means)."""
    text = str(value)
    if not text.strip() or listed and not all(p.strip() for p in text.split(",")):
        give = "comma-separated ones" if listed else "one"
        if optional:
            give += f", or leave {flag if flag.startswith('-') else 'it'} out"
        raise HinasError(f"{flag} {text!r}: an empty {what}; give {give}")
    return text
