"""What a GPU window sends back (the files a call wrote, as one tar.gz or 15-MiB parts) and how it
comes back into a results folder (all or nothing, never over a sealed item)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from hinas.campaign.folders import results_lock
from hinas.campaign.manifest import check_item, safe_relative
from hinas.errors import HinasError
from hinas.safeio import names_file, quote, write_bytes_durably

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
        with names_file(tmp), tarfile.open(tmp, "w:gz") as tar:
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
    ... in order (a gap ends them)."""
    target = Path(target)
    if target.is_file():
        return [target]
    parts, n = [], 1
    while (part := target.with_name(f"{target.name}.{n}")).is_file():
        parts.append(part)
        n += 1
    return parts


MAX_UNPACKED_BYTES = 4 * 2**30  # what one call may write: far above any window's results


def unpack_archives(targets, results) -> dict:
    """Unpack GPU windows' archives (:func:`write_archive`: each ``target`` or its parts), in the
    order given, into ``results``: all or nothing, every member of every archive checked before
    the first file is written.

    Refused (:class:`~hinas.errors.HinasError`, nothing written): no such archive or parts, an
    unreadable or truncated archive, a member that is not a regular file or folder (a link, a
    device), whose path is absolute or climbs out (``..``), that lands under a link or a file in
    ``results``, or that would change a file of an item already sealed here (its ``done`` marker
    stands on a manifest that checks: a finished result is never overwritten by another). Files
    of unfinished items (a long item's checkpoint and pieces) are replaced, as the next window's
    are meant to be; a later archive's file replaces an earlier one's. Each file is written
    atomically, under the folder's lock (:func:`~hinas.campaign.folders.results_lock`, taken once
    the archives have been read). Returns ``{"files": [...], "items": {item: files}, "parts": [...]}``."""
    results = Path(results)
    if results.exists() and not results.is_dir():
        raise HinasError(f"--results {quote(results)}: exists and is not a folder; give the results folder")
    members: dict[str, bytes] = {}
    parts: list[Path] = []
    for target in targets:
        found = archive_parts(target)
        if not found:
            raise HinasError(f"{quote(target)}: no such archive (nor {Path(target).name}.1, .2, ...); give the "
                             f"results.tgz or notebooks.tgz a GPU window wrote (nothing was written)")
        parts += found
        members.update(_members(found))
        if sum(map(len, members.values())) > MAX_UNPACKED_BYTES:
            raise HinasError(f"{quote(target)}: unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB; not a window's "
                             f"archive (nothing was written)")
    with results_lock(results):
        sealed: dict[str, bool] = {}
        for name, content in members.items():
            item = name.split("/")[0]
            if item not in sealed:
                sealed[item] = "/" in name and check_item(results / item)["state"] == "done"
            for parent in list(Path(name).parents)[:-1]:  # its folders inside results: real folders, never links
                p = results / parent
                if p.is_symlink() or (p.exists() and not p.is_dir()):
                    raise HinasError(f"{quote(p)}: a link or a file where the archive has a folder (nothing was "
                                     f"written)")
            existing = results / name
            if existing.is_symlink() or (existing.exists() and not existing.is_file()):
                raise HinasError(f"{quote(existing)}: a link or a folder where the archive has a file (nothing was "
                                 f"written)")
            if sealed[item] and (not existing.is_file() or existing.read_bytes() != content):
                raise HinasError(f"{quote(existing)}: the archive would change a file of {item}, which is sealed here "
                                 f"(its manifest checks); a finished result is never overwritten: unpack into another "
                                 f"folder and compare (nothing was written)")
        items: dict[str, int] = {}
        for name, content in sorted(members.items()):
            with names_file(results / name):
                (results / name).parent.mkdir(parents=True, exist_ok=True)
            write_bytes_durably(results / name, content)
            item = name.split("/")[0]
            items[item] = items.get(item, 0) + 1
    return {"files": sorted(members), "items": items, "parts": [str(p) for p in parts]}


def _members(parts: list[Path]) -> dict[str, bytes]:
    """The regular files of one archive (its parts joined), by relative path; a HinasError for any
    other member or an unreadable archive."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)), mode="r:gz") as tar:
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
                if m.size > MAX_UNPACKED_BYTES:
                    raise HinasError(f"{quote(parts[0])}: member {safe} is larger than {MAX_UNPACKED_BYTES >> 30} GiB "
                                     f"(nothing was written)")
                out[safe] = tar.extractfile(m).read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise HinasError(f"{quote(parts[0])}: not a readable tar.gz ({exc.__class__.__name__}: {exc}); with parts, "
                         f"give the name without .1 and keep every part beside it (nothing was written)") from None
    return out
