"""Importing a benchmark set: unpack an archive safely, find the set, check every image.

Used by ``data_scripts/download.py`` (``hinas data download``), before anything is installed:

* :func:`safe_extract` unpacks only the image members of a zip/tar(.gz) into a temporary
  folder: no member outside it, no links or special files, each image at most a cap, all at
  most a total cap and the free space; a damaged or truncated archive is one line.
* :func:`plan` takes only a folder that *is* the named set (``Set5``, ``Set5_HR``, ...;
  ``DIV2K_train_HR``; ``train/val/test`` under a ``BSDS500`` or ``BSR`` folder) from the
  extracted archive or a ``--from`` folder, only when neither that folder, the folders leading
  to it, nor anything in it is a symbolic link, and only when every image in it passes
  :func:`hinas.data.checks.image_problem`, the checks of ``hinas data check``; it writes nothing.
  Whether the set is complete (the names and SHA-256 its manifest lists, or its image count)
  is :mod:`hinas.data.manifest`'s check, also made before anything is installed.

Refusals are one :class:`~hinas.errors.DataError` line naming the file, the problem and the fix.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from hinas.data.checks import image_problem
from hinas.data.datasets import IMAGE_EXTENSIONS
from hinas.errors import DataError
from hinas.safeio import quote

__all__ = ["is_image_name", "images_in", "find_set", "plan", "safe_extract"]


def is_image_name(name: str) -> bool:
    """An image the loaders read: an image suffix, not hidden (macOS ``._x.png``), not ``__MACOSX``."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return (os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS and not base.startswith(".")
            and "__MACOSX" not in name.split("/"))


def images_in(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (as the loaders read them: no hidden files, no subfolders)."""
    try:
        return sorted(p for p in folder.iterdir() if is_image_name(p.name) and p.is_file())
    except OSError:
        return []


def _named(folder_name: str, keys) -> bool:
    low = folder_name.lower()
    return any(low == k or (low.startswith(k) and low[len(k)] in "_-. ") for k in keys)


def _folders(src: Path) -> list[Path]:
    out = [src]
    for dirpath, dirnames, _ in os.walk(src, followlinks=False):
        out.extend(Path(dirpath) / d for d in sorted(dirnames))
    return out


def find_set(src: Path, name: str, spec: dict, where: str, own_archive: bool = False) -> list[tuple[Path, str]]:
    """[(folder holding the images, its folder under the data root)] for set ``name`` in ``src``.

    ``spec``: ``folder`` (under the data root) and ``names`` (lower-case folder names that are
    the set; ``set5`` also accepts ``Set5_HR``, ``set5-hr``, ...). ``where`` names ``src`` in messages.
    ``own_archive``: ``src`` is the set's own download, so a single folder of images (whatever
    its name) is the set.
    """
    if name == "BSDS500":
        splits = ("train", "val", "test")
        for d in _folders(src):
            if all(images_in(d / s) for s in splits) and any(_named(part, spec["names"]) for part in d.resolve().parts):
                return [(d / s, f"{spec['folder']}/{s}") for s in splits]
        raise DataError(f"{where}: no BSDS500 train/val/test folders with images (under a BSDS500 or BSR folder) "
                        f"found; give the BSDS500 archive or the folder holding BSDS500/; nothing was installed")
    with_images = [d for d in _folders(src) if images_in(d)]
    found = [d for d in with_images if _named(d.resolve().name if d == src else d.name, spec["names"])]
    if not found and own_archive and len(with_images) == 1:
        found = with_images
    if not found:
        raise DataError(f"{where}: no {name} folder with images found (looked for a folder named {name} or "
                        f"{name}_*); give the {name} folder, or one that holds it; nothing was installed")
    # the exact name first (Set5 before Set5_LR), then an HR folder, then the shallowest
    found.sort(key=lambda d: (d.name.lower() not in spec["names"], "hr" not in d.name.lower(), len(d.parts)))
    return [(found[0], spec["folder"])]


def _refuse_links(src: Path, folder: Path, label) -> None:
    """No symbolic link as the set folder, a folder between ``src`` and it, or an entry in it."""
    def refuse(p: Path):
        raise DataError(f"{label(p)}: a symbolic link (to {quote(os.readlink(p))}); a set is installed only from "
                        f"real files: copy the real file in instead of the link; nothing was installed")

    p = folder
    while True:
        if p.is_symlink():
            refuse(p)
        if p == src or src not in p.parents:
            break
        p = p.parent
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            refuse(entry)


def plan(src: Path, name: str, spec: dict, root: Path, where: str, label, max_bytes: int,
         own_archive: bool = False) -> list[tuple[list[Path], str]]:
    """What installing ``name`` from ``src`` copies: [(image files, folder under the root)].

    No symbolic link among the set's folders and files (:func:`_refuse_links`); every image is
    checked (size on disk at most ``max_bytes``, then :func:`image_problem` as the dataset
    ``spec['check_as']``, or ``BSDS500-<split>``); ``label(path)`` names a file in messages (an
    archive member, say). ``own_archive``: as for :func:`find_set`. Completeness (names, SHA-256,
    count) is :func:`hinas.data.manifest.require_complete`'s.
    """
    dest = root / spec["folder"]
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(f"{quote(dest)}: exists but holds no {name} images; move it away and run again")
    out = []
    for folder, rel in find_set(src, name, spec, where, own_archive):
        _refuse_links(src, folder, label)
        files = images_in(folder)
        split = rel.rsplit("/", 1)[-1]
        check_as = spec.get("check_as") or f"BSDS500-{split}"
        for f in files:
            size = f.stat().st_size
            if size > max_bytes:
                raise DataError(f"{label(f)}: {size / 2**20:.1f} MiB, more than an image may be "
                                f"({max_bytes / 2**20:.0f} MiB; HINAS_MAX_IMAGE_BYTES); nothing was installed")
            problem = image_problem(f, check_as)
            if problem:
                if problem.startswith(quote(f)):
                    problem = label(f) + problem[len(quote(f)):]
                raise DataError(f"{problem} (nothing was installed)")
        out.append((files, rel))
    return out


# ------------------------------------------------------------------------------ extraction
# what reading a damaged archive raises (gzip's BadGzipFile is an OSError, an encrypted zip member
# a RuntimeError, an unknown zip compression NotImplementedError)
_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, OSError,
                   ValueError, RuntimeError, NotImplementedError)


def _member_path(name: str, archive: Path) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{quote(archive)}: refuses to extract {quote(name)}: absolute path in the archive "
                        f"(unsafe archive); nothing was installed")
    if ".." in p.parts:
        raise DataError(f"{quote(archive)}: refuses to extract {quote(name)}: '..' in the path (unsafe archive); "
                        f"nothing was installed")
    return p


def _damaged(archive: Path, exc: BaseException) -> DataError:
    detail = str(exc).splitlines()[0][:100] if str(exc) else exc.__class__.__name__
    return DataError(f"{quote(archive)}: damaged, truncated or unsupported archive ({quote(detail)}); download "
                     f"it again or repack it as zip/tar.gz; nothing was installed")


def _local_error(exc: OSError, path: Path) -> DataError:
    return DataError(f"{quote(path)}: {exc.strerror or exc}; free some space or check the permissions, and run "
                     f"again; nothing was installed")


def _members(archive: Path, handle) -> list:
    """[(name, size, member)] of the regular files, after refusing unsafe entries."""
    entries = []
    if isinstance(handle, zipfile.ZipFile):
        for info in handle.infolist():
            _member_path(info.filename, archive)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(f"{quote(archive)}: refuses to extract {quote(info.filename)}: symbolic link "
                                f"(unsafe archive); nothing was installed")
            if not info.is_dir():
                entries.append((info.filename, info.file_size, info))
        return entries
    for m in handle.getmembers():
        _member_path(m.name, archive)
        if m.issym() or m.islnk():
            raise DataError(f"{quote(archive)}: refuses to extract {quote(m.name)}: link to {quote(m.linkname)} "
                            f"(unsafe archive); nothing was installed")
        if not (m.isfile() or m.isdir()):
            raise DataError(f"{quote(archive)}: refuses to extract {quote(m.name)}: special file (unsafe archive); "
                            f"nothing was installed")
        if m.isfile():
            entries.append((m.name, m.size, m))
    return entries


def _open(archive: Path):
    if zipfile.is_zipfile(archive):
        return zipfile.ZipFile(archive)
    try:
        return tarfile.open(archive)
    except tarfile.TarError:
        raise DataError(f"{quote(archive)}: not a zip or tar archive (or a truncated one); delete it and download "
                        f"again") from None


def safe_extract(archive: Path, dest: Path, max_total: int, max_image: int) -> dict:
    """Extract the image members of a zip/tar(.gz) into ``dest``; returns {extracted path: member name}.

    Refused before anything is extracted: absolute or ``..`` member paths, links, special files,
    an image member over ``max_image`` bytes, image members over ``max_total`` bytes together or
    over the free space. A member stops at its declared size; a damaged or truncated archive is
    one line. Non-image members are not extracted. On failure the caller removes ``dest``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        handle = _open(archive)
    except _ARCHIVE_ERRORS as exc:
        raise _damaged(archive, exc) from None
    with handle:
        try:
            entries = _members(archive, handle)
        except _ARCHIVE_ERRORS as exc:
            raise _damaged(archive, exc) from None
        images = [(name, size, m) for name, size, m in entries if is_image_name(str(_member_path(name, archive)))]
        for name, size, _ in images:
            if size > max_image:
                raise DataError(f"{quote(archive)}: member {quote(name)} is {size / 2**20:.1f} MiB, more than an "
                                f"image may be ({max_image / 2**20:.0f} MiB; HINAS_MAX_IMAGE_BYTES); nothing was "
                                f"extracted")
        total = sum(size for _, size, _ in images)
        if total > max_total:
            raise DataError(f"{quote(archive)}: would unpack to {total / 1e9:.1f} GB, more than the "
                            f"{max_total / 1e9:.1f} GB limit (an archive bomb, or set HINAS_MAX_EXTRACT_BYTES); "
                            f"nothing was extracted")
        free = shutil.disk_usage(dest).free
        if total + (256 << 20) > free:
            raise DataError(f"{quote(archive)}: would unpack to {total / 1e9:.1f} GB but only {free / 1e9:.1f} GB "
                            f"are free under {quote(dest)}; free some space and run again; nothing was extracted")
        extracted = {}
        for name, size, member in images:
            target = dest.joinpath(*_member_path(name, archive).parts)
            try:
                src = handle.open(member) if isinstance(handle, zipfile.ZipFile) else handle.extractfile(member)
            except _ARCHIVE_ERRORS as exc:
                raise _damaged(archive, exc) from None
            with src:
                _write_bounded(src, target, size, archive, name)
            extracted[target] = name
    return extracted


def _write_bounded(src, target: Path, size: int, archive: Path, name: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "wb")
    except OSError as exc:
        raise _local_error(exc, target) from None
    written = 0
    with out:
        while True:
            try:
                chunk = src.read(1 << 20)
            except _ARCHIVE_ERRORS as exc:
                raise _damaged(archive, exc) from None
            if not chunk:
                break
            written += len(chunk)
            if written > size:
                raise DataError(f"{quote(archive)}: member {quote(name)} holds more than the {size} bytes it "
                                f"declares (a damaged or hostile archive); nothing was installed")
            try:
                out.write(chunk)
            except OSError as exc:
                raise _local_error(exc, target) from None
    if written < size:
        raise _damaged(archive, EOFError(f"member {name} ends after {written} of {size} bytes"))
