"""When a benchmark set is complete: against a checksum manifest, or by its image count.

``hinas data download`` (``data_scripts/download.py``) installs a set only when it is complete,
checked before anything is written into the data root, and only from real files (never a link):

* A set the manifest lists -- ``SHA256  FOLDER/NAME`` lines as ``sha256sum`` writes them, by
  default ``data_scripts/reference_files.sha256`` (the checksums of ``../shared/data``), or
  ``--manifest FILE`` for your own copy -- must hold exactly the image names the manifest lists
  for its folder under the data root (``Set5/``, ``BSDS500/train/``, ...), each with the listed
  SHA-256: a missing, an extra or a changed image is refused.
* A set the manifest does not list (DIV2K and Manga109 with the default one) must hold the
  set's image count (``expected`` of its spec).
* A set already in the data root counts as present only when it is complete by the same rule
  and holds no symbolic link; otherwise the refusal names what is missing or different.

Every refusal is one :class:`~hinas.errors.DataError` line naming the file, the problem and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hinas.data.checks import MAX_MANIFEST_BYTES
from hinas.data.importing import is_image_name
from hinas.errors import DataError
from hinas.safeio import quote, sha256_file

__all__ = ["Manifest", "read_manifest", "parts", "require_complete", "require_same_bytes", "installed"]

_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
IMPORT_FIX = ("import the complete, unchanged set, or give --manifest FILE listing your own copy; nothing was "
              "installed")


@dataclass(frozen=True)
class Manifest:
    """``table``: {``FOLDER/NAME`` under the data root: SHA-256}; ``name``: how messages name the file;
    ``default``: the repository's reference checksums."""

    table: dict
    name: str
    default: bool = False

    def listed(self, rel: str) -> dict[str, str]:
        """{image name: SHA-256} the manifest lists directly in folder ``rel`` (``Set5``, ``BSDS500/train``)."""
        prefix = rel.strip("/") + "/"
        return {path[len(prefix):]: digest for path, digest in self.table.items()
                if path.startswith(prefix) and "/" not in path[len(prefix):] and is_image_name(path)}

    @property
    def what(self) -> str:
        """How a summary names the checksums: ``5 files match {what}``."""
        return "the reference checksums" if self.default else f"the checksums in {self.name}"


def read_manifest(path: Path, fix: str, name: str | None = None, default: bool = False) -> Manifest:
    """Parse a ``sha256sum`` list (``./`` prefixes dropped, ``#`` comments skipped); one line naming
    ``path`` and ``fix`` when it is missing, unreadable, binary, too large or garbled."""
    q = quote(path)
    try:
        if not path.is_file():
            raise DataError(f"{q}: no such checksum list; {fix}")
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise DataError(f"{q}: {size} bytes is too large for a checksum list (limit {MAX_MANIFEST_BYTES}); {fix}")
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{q}: cannot be read ({exc.strerror or exc}); {fix}") from None
    try:
        if b"\0" in raw:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{q}: not a text checksum list; {fix}") from None
    table: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.fullmatch(line.strip())
        if m is None:
            raise DataError(f"{q}: line {number} is not 'SHA256  PATH'; {fix}")
        rel, digest = PurePosixPath(m.group(2).strip()).as_posix(), m.group(1).lower()
        if table.setdefault(rel, digest) != digest:
            raise DataError(f"{q}: line {number} lists {quote(rel)} again with another checksum; {fix}")
    return Manifest(table, name or q, default)


def parts(spec: dict) -> dict[str, int]:
    """{folder under the data root: expected image count} of a set (BSDS500: one per split)."""
    expected = spec["expected"]
    if isinstance(expected, dict):
        return {f"{spec['folder']}/{split}": n for split, n in expected.items()}
    return {spec["folder"]: expected}


def _names_problem(files: list[Path], rel: str, expected: int, manifest: Manifest, where: str, label) -> str | None:
    """Why ``files`` (the images of folder ``rel``) are not the set, by name or by count; None if they are."""
    want, have = manifest.listed(rel), {f.name: f for f in files}
    if not want:
        if len(files) == expected:
            return None
        return (f"{where}: {len(files)} images for {rel}/ but the set has {expected} ({manifest.name} lists no "
                f"checksums for it)")
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    more = len(missing) + len(extra) - 1
    more = f"; {more} other image(s) missing or extra" if more > 0 else ""
    if missing:
        return (f"{where}: {rel}/{missing[0]} is missing ({len(want) - len(missing)} of the {len(want)} images "
                f"{manifest.name} lists for {rel}/{more})")
    if extra:
        return f"{label(have[extra[0]])}: not one of the {len(want)} images {manifest.name} lists for {rel}/{more}"
    return None


def require_complete(name: str, spec: dict, planned, manifest: Manifest, where: str, label) -> None:
    """Refuse ``planned`` ([(image files, folder under the root)] of set ``name``, before any copy)
    unless every folder holds exactly the images the manifest lists, or the expected count."""
    expected = parts(spec)
    for files, rel in planned:
        problem = _names_problem(files, rel, expected[rel], manifest, where, label)
        if problem:
            raise DataError(f"{problem}; {IMPORT_FIX}")


def _bytes_problem(pairs, rel: str, manifest: Manifest, label) -> tuple[str | None, int]:
    """(why a file's SHA-256 differs from the manifest's, or None; how many matched) for ``pairs``
    [(file named in messages, copy to hash)] of folder ``rel``."""
    want = manifest.listed(rel)
    bad, matched = [], 0
    for shown, copy in pairs:
        if shown.name not in want:
            continue
        got = sha256_file(copy)
        if got == want[shown.name]:
            matched += 1
        else:
            bad.append((shown, got))
    if not bad:
        return None, matched
    shown, got = bad[0]
    more = f"; {len(bad) - 1} other image(s) differ too" if len(bad) > 1 else ""
    return (f"{label(shown)}: SHA-256 {got[:12]}... is not the {want[shown.name][:12]}... {manifest.name} lists "
            f"for {rel}/{shown.name} (a damaged or different version{more})"), matched


def require_same_bytes(planned, copies: Path, manifest: Manifest, label) -> int:
    """Refuse unless each listed image of ``planned``, as copied under ``copies`` (``copies/REL/NAME``),
    has the manifest's SHA-256; returns how many matched."""
    total = 0
    for files, rel in planned:
        problem, matched = _bytes_problem([(f, copies / rel / f.name) for f in files], rel, manifest, label)
        if problem:
            raise DataError(f"{problem}; {IMPORT_FIX}")
        total += matched
    return total


def _link(path: Path, fix: str) -> DataError:
    return DataError(f"{quote(path)}: a symbolic link in the data root, not a real file or folder; a set counts as "
                     f"present only as real files: copy the real file in, or {fix}")


def installed(root: Path, name: str, spec: dict, manifest: Manifest) -> tuple[int, int] | None:
    """(files matching the manifest, images) when set ``name`` is in ``root`` and complete; None when its
    folder is absent or empty (install it). A present but incomplete or different set, or one holding a
    symbolic link, is a refusal naming what is missing or different: never "already present"."""
    folder = root / spec["folder"]
    fix = f"move {quote(folder)} away and run again to install a complete copy"
    where = root
    for component in PurePosixPath(spec["folder"]).parts:
        where = where / component
        if where.is_symlink():
            raise _link(where, fix)
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return None
    if not folder.is_dir():
        raise DataError(f"{quote(folder)}: exists but is not a {name} folder; {fix}")
    matched = images = 0
    for rel, expected in parts(spec).items():
        d = root / rel
        if d.is_symlink():
            raise _link(d, fix)
        entries = sorted(d.iterdir()) if d.is_dir() else []
        for p in entries:
            if p.is_symlink():
                raise _link(p, fix)
        files = [p for p in entries if is_image_name(p.name) and p.is_file()]
        problem = _names_problem(files, rel, expected, manifest, quote(root), quote)
        if problem is None:
            problem, k = _bytes_problem([(f, f) for f in files], rel, manifest, quote)
            matched += k
        if problem:
            raise DataError(f"{problem}; {name} is in the data root but incomplete or different, so it is not "
                            f"counted as present: {fix}")
        images += len(files)
    return matched, images
