"""What a GPU window sends back (the files a call wrote, as one tar.gz or 15-MiB parts) and how it
comes back into a results folder (all or nothing, never over a sealed item)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from hinas.campaign.folders import DONE, results_lock
from hinas.campaign.manifest import check_item, safe_relative
from hinas.errors import HinasError
from hinas.safeio import names_file, open_fresh_temp, quote, write_bytes_durably

ARCHIVE_PART_BYTES = 15 * 2**20  # the GPU machine returns files of at most 16 MiB (8 files)


def written_since(results: Path, since: float) -> list[Path]:
    """Regular files under ``results`` (links never followed, ``*.tmp`` left out) modified at or
    after ``since`` (wall clock), sorted."""
    files = []
    for dirpath, dirnames, filenames in os.walk(results, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
        for f in filenames:
            p = here / f
            if f.endswith(".tmp") or p.is_symlink() or not p.is_file():
                continue
            if p.stat().st_mtime >= since:
                files.append(p)
    return sorted(files)


def write_archive(results, since: float, target) -> list[str]:
    """tar.gz of every file under ``results`` written at or after ``since`` (wall clock), as
    ``target`` or, when larger than :data:`ARCHIVE_PART_BYTES`, ``target.1``, ``target.2``, ...

    Members are relative to ``results``; :func:`unpack_archives` (``hinas campaign unpack``) unpacks them. A full
    disk or a permission error names the path and leaves neither a temp file nor a part.
    """
    results, target = Path(results), Path(target)
    with names_file(target.parent):
        target.parent.mkdir(parents=True, exist_ok=True)
    files = written_since(results, since)
    tmp = target.with_name(target.name + ".tmp")
    parts: list[str] = []
    try:
        with names_file(tmp), open_fresh_temp(tmp, "wb") as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
            for p in files:
                tar.add(p, arcname=str(p.relative_to(results)), recursive=False)
        size = tmp.stat().st_size
        if size <= ARCHIVE_PART_BYTES:
            os.replace(tmp, target)
            return [str(target)]
        with open(tmp, "rb") as fh:
            n = 1
            while chunk := fh.read(ARCHIVE_PART_BYTES):
                part = target.with_name(f"{target.name}.{n}")
                write_bytes_durably(part, chunk)
                parts.append(str(part))
                n += 1
        tmp.unlink()
        return parts
    except BaseException:
        tmp.unlink(missing_ok=True)
        for part in parts:  # a half set of parts would unpack as a truncated archive
            Path(part).unlink(missing_ok=True)
        raise


def archive_parts(target) -> list[Path]:
    """What :func:`write_archive` wrote for ``target``: the file itself, or its parts ``.1``, ``.2``,
    ... in order, as one set. Refused (:class:`~hinas.errors.HinasError`, naming the file): the file
    beside parts (one of them is a stale window's), a gap in the numbers, or parts of unequal size
    but for a smaller last one (parts of two windows)."""
    target = Path(target)
    numbered = _numbered_parts(target)
    if target.is_file():
        if numbered:
            raise HinasError(f"{quote(target)} and {quote(numbered[0][1])}: a whole archive beside parts, so one of "
                             f"them is a stale window's; move the older away and unpack again (nothing was written)")
        return [target]
    parts = [p for _, p in numbered]
    for expected, (n, part) in enumerate(numbered, 1):
        if n != expected:
            raise HinasError(f"{quote(part)}: part {expected} of {target.name} is missing before it; copy every "
                             f"part of the window beside it (nothing was written)")
    sizes = [p.stat().st_size for p in parts]
    for part, size in zip(parts[1:], sizes[1:]):
        if size > sizes[0] or (size < sizes[0] and part != parts[-1]):
            raise HinasError(f"{quote(part)}: {size} bytes where {parts[0].name} has {sizes[0]} (a window cuts its "
                             f"archive into equal parts, the last no larger): parts of two windows; keep only the "
                             f"newest window's parts (nothing was written)")
    return parts


def _numbered_parts(target: Path) -> list[tuple[int, Path]]:
    """[(n, path)] of the regular files ``target.N`` beside ``target``, by n."""
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return []
    prefix = target.name + "."
    found = [(int(p.name[len(prefix):]), p) for p in siblings
             if p.name.startswith(prefix) and p.name[len(prefix):].isdigit() and p.is_file()
             and not p.is_symlink()]
    return sorted(found)


MAX_UNPACKED_BYTES = 4 * 2**30  # what one call may write: far above any window's results
_NAME_MAX = 255  # bytes of one path component on the file systems results live on
_READ_BYTES = 16 * 2**20  # decompressed a chunk at a time, so the cap stops a bomb early


def unpack_archives(targets, results) -> dict:
    """Unpack GPU windows' archives (:func:`write_archive`: each ``target`` or its parts), in the
    order given, into ``results`` as one transaction.

    Everything is read and checked before the first write: every archive whole (its parts as one
    set, :func:`archive_parts`; the gzip CRC and length; at most :data:`MAX_UNPACKED_BYTES`
    decompressed, counted while decompressing), every member (a regular file or folder, a relative
    path that stays inside, no name too long, no path both a file and a folder), and every path
    against ``results`` under its lock (:func:`~hinas.campaign.folders.results_lock`): no link or
    file where a folder goes, no link or folder where a file goes, and no change to a file of an
    item sealed here at any depth (a folder whose ``done`` marker stands on a manifest that
    checks: a finished result is never overwritten by another). Files of unfinished items (a long
    item's checkpoint and pieces) are replaced, as the next window's are meant to be; a later
    archive's file replaces an earlier one's. The files are then written into a fresh temporary
    folder inside ``results`` and moved into place; a failure while moving puts back every file
    and folder as it was. Returns ``{"files": [...], "items": {item: files}, "parts": [...]}``;
    a refusal is a :class:`~hinas.errors.HinasError` line and leaves ``results`` as it was."""
    results = Path(results)
    if results.exists() and not results.is_dir():
        raise HinasError(f"--results {quote(results)}: exists and is not a folder; give the results folder")
    members: dict[str, bytes] = {}
    parts: list[Path] = []
    left = MAX_UNPACKED_BYTES
    for target in targets:
        found = archive_parts(target)
        if not found:
            raise HinasError(f"{quote(target)}: no such archive (nor {Path(target).name}.1, .2, ...); give the "
                             f"results.tgz or notebooks.tgz a GPU window wrote (nothing was written)")
        parts += found
        tar_bytes = _gunzip(found, left + 1024 * 1024)  # a tar's headers on top of its files
        members.update(_members(found, tar_bytes))
        left = MAX_UNPACKED_BYTES - sum(map(len, members.values()))
        if left < 0:
            raise HinasError(f"{quote(target)}: unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB; not a window's "
                             f"archive (nothing was written)")
    _check_member_paths(members, parts[0] if parts else results)
    with results_lock(results):
        _check_against_folder(members, results)
        _install(members, results)
    items: dict[str, int] = {}
    for name in members:
        items[name.split("/")[0]] = items.get(name.split("/")[0], 0) + 1
    return {"files": sorted(members), "items": dict(sorted(items.items())), "parts": [str(p) for p in parts]}


def _gunzip(parts: list[Path], cap: int) -> bytes:
    """The parts joined and decompressed, every gzip member's CRC and length checked (a flipped
    byte or a cut end is refused); more than ``cap`` bytes is refused as it is reached."""
    chunks, size = [], 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as gz:
            while chunk := gz.read(_READ_BYTES):
                size += len(chunk)
                if size > cap:
                    raise HinasError(f"{quote(parts[0])}: unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB; not "
                                     f"a window's archive (nothing was written)")
                chunks.append(chunk)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise HinasError(f"{quote(parts[0])}: not a readable tar.gz ({exc.__class__.__name__}: {exc}); with parts, "
                         f"give the name without .1 and keep every part beside it (nothing was written)") from None
    return b"".join(chunks)


def _members(parts: list[Path], tar_bytes: bytes) -> dict[str, bytes]:
    """The regular files of one archive, by relative path; a HinasError for any other member."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for m in tar:
                name = m.name[2:] if m.name.startswith("./") else m.name
                if m.isdir() and name.strip("/.") == "":
                    continue
                safe = safe_relative(name.rstrip("/") if m.isdir() else name)
                if safe is None:
                    raise HinasError(f"{quote(parts[0])}: member {m.name!r} is an absolute path or climbs out of the "
                                     f"results folder (nothing was written)")
                if m.isdir():
                    continue
                if not m.isfile():
                    raise HinasError(f"{quote(parts[0])}: member {safe} is not a regular file (a link or a device; "
                                     f"nothing was written)")
                out[safe] = tar.extractfile(m).read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise HinasError(f"{quote(parts[0])}: not a readable tar ({exc.__class__.__name__}: {exc}); give the "
                         f"archive a GPU window wrote (nothing was written)") from None
    return out


def _check_member_paths(members: dict[str, bytes], where: Path) -> None:
    """Names a file system takes, and no path that is both a file and a folder among the members."""
    for name in sorted(members):
        for part in name.split("/"):
            if len(os.fsencode(part)) > _NAME_MAX:
                raise HinasError(f"{quote(where)}: member {name[:80]!r}... has a name longer than {_NAME_MAX} bytes; "
                                 f"not a window's archive (nothing was written)")
        for parent in list(PurePosixPath(name).parents)[:-1]:
            if str(parent) in members:
                raise HinasError(f"{quote(where)}: {parent} is both a file and a folder among the archives' members; "
                                 f"not a window's archive (nothing was written)")


def _check_against_folder(members: dict[str, bytes], results: Path) -> None:
    """Every member against what is in ``results``: no link or file on its way, no link or folder
    at its place, no change inside an item sealed here (at any depth)."""
    sealed: dict[str, bool] = {}
    for name, content in sorted(members.items()):
        folders = [str(p) for p in reversed(list(PurePosixPath(name).parents)[:-1])]
        for folder in folders:
            p = results / folder
            if p.is_symlink() or (p.exists() and not p.is_dir()):
                raise HinasError(f"{quote(p)}: a link or a file where the archive has a folder (nothing was "
                                 f"written)")
        existing = results / name
        if existing.is_symlink() or (existing.exists() and not existing.is_file()):
            raise HinasError(f"{quote(existing)}: a link or a folder where the archive has a file (nothing was "
                             f"written)")
        for folder in folders:
            if folder not in sealed:
                marker = results / folder / DONE
                sealed[folder] = (marker.exists() or marker.is_symlink()) \
                    and check_item(results / folder)["state"] == "done"
            if sealed[folder] and (not existing.is_file() or existing.read_bytes() != content):
                raise HinasError(f"{quote(existing)}: the archive would change a file of {folder}, which is sealed "
                                 f"here (its manifest checks); a finished result is never overwritten: unpack into "
                                 f"another folder and compare (nothing was written)")


def _install(members: dict[str, bytes], results: Path) -> None:
    """Write the members into a fresh temporary folder inside ``results``, then move each into
    place (an existing file kept as a hard link until the end); any failure puts everything back."""
    try:
        stage = Path(tempfile.mkdtemp(prefix=".unpack-", dir=results))
    except OSError as exc:
        raise HinasError(f"{quote(results)}: cannot write there ({exc.strerror or exc}); nothing was written") from None
    made: list[Path] = []          # folders created in results, in order
    moved: list[tuple[Path, Path | None]] = []  # (file in results, its old content's link or None)
    try:
        for i, (name, content) in enumerate(sorted(members.items())):
            with names_file(results / name), open(stage / f"{i}.new", "xb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
        for i, name in enumerate(sorted(members)):
            dest = results / name
            for folder in reversed(list(dest.parents)[:len(PurePosixPath(name).parents) - 1]):
                if not folder.exists():
                    with names_file(folder):
                        folder.mkdir()
                    made.append(folder)
            old = None
            if dest.exists():
                old = stage / f"{i}.old"
                os.link(dest, old)
            with names_file(dest):
                os.replace(stage / f"{i}.new", dest)
            moved.append((dest, old))
    except BaseException as exc:
        for dest, old in reversed(moved):
            if old is None:
                dest.unlink(missing_ok=True)
            else:
                os.replace(old, dest)
        for folder in reversed(made):
            folder.rmdir()
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, OSError):
            raise HinasError(f"{quote(exc.filename or results)}: {exc.strerror or exc}; nothing was written (check "
                             f"the free space and permissions, and unpack again)") from None
        raise
    shutil.rmtree(stage, ignore_errors=True)
