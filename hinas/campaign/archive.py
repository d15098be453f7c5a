"""What a GPU window sends back: the files a call wrote, as one tar.gz or 15-MiB parts."""

from __future__ import annotations

import os
from pathlib import Path

from hinas.safeio import names_file

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

    Members are relative to ``results``; ``cat target* | tar xzf - -C DIR`` unpacks them. A full
    disk or a permission error names the path and leaves neither a temp file nor a part.
    """
    import tarfile

    from hinas.safeio import write_bytes_durably

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
