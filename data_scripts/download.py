#!/usr/bin/env python3
"""Fetch the HiNAS benchmark datasets into the layout ``hinas.data`` reads (that of
``../shared/data``: ``BSDS500/{train,val,test}``, ``Set5``, ``Set14``, ``Urban100``,
``DIV2K/...``), or import a local copy.

    python data_scripts/download.py BSDS500 Set5 Set14 Urban100 --root ~/hinas-data
    python data_scripts/download.py --from /path/to/copy --root ~/hinas-data     # no network
    python data_scripts/download.py --list

* Downloads resume (HTTP Range into ``NAME.part``) and are checked against a SHA-256 when one
  is recorded below. The mirrors could not be reached from the offline machine this was
  written on, so no archive checksum is recorded yet: the script prints the SHA-256 of each
  archive it fetches so that it can be added here.
* Archives (zip, tar, tar.gz) are extracted safely into a temporary folder: absolute paths,
  ``..`` components, links and special files are refused; only image members are extracted,
  each at most 64 MiB (``HINAS_MAX_IMAGE_BYTES``), all together at most the free space and
  ``HINAS_MAX_EXTRACT_BYTES``; a damaged or truncated archive is one line.
* Only a folder that is (or holds) the named set is installed -- ``Set5`` or ``Set5_HR`` for
  Set5, ``DIV2K_train_HR`` for DIV2K, ``train/val/test`` under a ``BSDS500``/``BSR`` folder --
  and only when every image in it passes the checks of ``hinas data check`` (readable, 8-bit,
  no alpha, at most ``hinas.data.datasets.MAX_IMAGE_PIXELS`` pixels); checking needs the
  hinas package (numpy, Pillow).
* A set is installed only when it is complete against its manifest: for a set that
  ``reference_files.sha256`` (the checksums of ``../shared/data``; ``--manifest FILE`` for
  another ``SHA256  FOLDER/NAME`` list) names, exactly the images it lists for the set's folder
  (``Set5/``, ``BSDS500/train/``, ...), each with the listed SHA-256; for a set it does not name
  (DIV2K, Manga109), the set's image count. A missing, extra or changed image is refused.
* Never a link: a symbolic link anywhere in a ``--from`` folder (or the folder itself), or in a
  set already in the root, is refused; archives holding links are refused too.
* Every set of the call is found and checked (images, names, counts, and the SHA-256 of the
  copies) before anything is installed; sets are copied into a temporary folder under the root
  and renamed into place, so a refusal, a full disk or an interrupt leaves no half-installed set
  (and no temporary files).
* It is idempotent: a set already in the root is left alone when it is complete by the same
  rule ("already present"); one that is incomplete or different is refused, naming what is
  missing or changed (move it away and run again).
* Manga109 needs a licence application; ``download.py Manga109`` says how, and imports your
  copy with ``--from``.

Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent

# dataset -> where it lives under the root, where it comes from, which folder names are the set
# ("set5" also accepts Set5_HR, set5-hr, ...), how many images it has, and the name that
# hinas.data.datasets checks it as.
SOURCES = {
    "BSDS500": {
        "folder": "BSDS500",
        "urls": ["https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"],
        "sha256": None,
        # inside the archive: BSR/BSDS500/data/images/{train,val,test}/*.jpg
        "names": ("bsds500", "bsr"), "expected": {"train": 200, "val": 100, "test": 200},
    },
    "Set5": {"folder": "Set5", "urls": ["https://huggingface.co/datasets/eugenesiow/Set5/resolve/main/data/Set5_HR.tar.gz"],
             "sha256": None, "names": ("set5",), "expected": 5, "check_as": "Set5"},
    "Set14": {"folder": "Set14", "urls": ["https://huggingface.co/datasets/eugenesiow/Set14/resolve/main/data/Set14_HR.tar.gz"],
              "sha256": None, "names": ("set14",), "expected": 14, "check_as": "Set14"},
    "Urban100": {"folder": "Urban100",
                 "urls": ["https://huggingface.co/datasets/eugenesiow/Urban100/resolve/main/data/Urban100_HR.tar.gz"],
                 "sha256": None, "names": ("urban100",), "expected": 100, "check_as": "Urban100"},
    # the folder name hinas.data.datasets looks for first (DIV2K's own archive layout)
    "DIV2K": {"folder": "DIV2K/DIV2K_train_HR", "urls": ["https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip"],
              "sha256": None, "names": ("div2k_train_hr",), "expected": 800, "check_as": "DIV2K-train"},
}
# importable with --from only
MANGA109_SOURCE = {"folder": "Manga109", "urls": [], "sha256": None, "names": ("manga109",), "expected": 109,
                   "check_as": "Manga109"}
ALIASES = {"B100": "BSDS500", "BSD100": "BSDS500", "BSD200": "BSDS500"}
MANGA109 = ("Manga109 is distributed under a licence for academic use: apply at "
            "http://www.manga109.org/en/download.html, then import your copy with "
            "'download.py Manga109 --from DIR --root ROOT' (folder Manga109/ with the PNG pages).")
_DISK_FIX = "free some space or check the permissions, and run again"


RULE = ("A set is installed only when it is complete against its manifest, checked before anything is written "
        "into the root: exactly the images reference_files.sha256 (or --manifest FILE) lists for its folder, each "
        "with the listed SHA-256, or, for a set the manifest does not list (DIV2K, Manga109), the set's image count. "
        "Never a link: a symbolic link in a --from folder or an archive is refused. A set already in the root is "
        "'already present' only when complete by the same rule. Errors print one line and exit with status 2.")


class DownloadError(Exception):
    pass


def _spec(name: str) -> dict:
    return MANGA109_SOURCE if name == "Manga109" else SOURCES[name]


def q(path) -> str:
    """A path safe to print: escaped when it holds control characters."""
    s = str(path)
    return repr(s) if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in s) else s


def _local_error(exc: OSError, path: Path) -> DownloadError:
    """A write that failed on this machine (full disk, permission): one line naming ``path``."""
    return DownloadError(f"{q(path)}: {exc.strerror or exc}; {_DISK_FIX}; nothing was installed")


def max_image_bytes() -> int:
    """Cap on one image file (the largest benchmark image, a DIV2K PNG, is ~6 MB)."""
    return int(os.environ.get("HINAS_MAX_IMAGE_BYTES", 64 * 1024**2))


def _importing():
    """:mod:`hinas.data.importing`: finding a set and the image checks of ``hinas data check``."""
    for attempt in range(2):
        try:
            import hinas.data.importing as importing
            return importing
        except ImportError as exc:
            if attempt:
                raise DownloadError(f"checking the images needs the hinas package and its dependencies ({exc}); "
                                    f"run this in the environment where hinas is installed (pip install -e .)") from None
            sys.path.insert(0, str(HERE.parent))  # a source checkout without an install


def _checked(fn, *args):
    """``fn(*args)`` from the hinas package, its one-line :class:`DataError` as a :class:`DownloadError`."""
    _importing()
    from hinas.errors import DataError

    try:
        return fn(*args)
    except DataError as exc:
        raise DownloadError(str(exc)) from None


def plan(src: Path, name: str, root: Path, where: str, label, own_archive: bool = False):
    """[(image files, folder under the root)] to install ``name`` from ``src``, all checked (no writes)."""
    return _checked(_importing().plan, src, name, _spec(name), root, where, label, max_image_bytes(), own_archive)


# ----------------------------------------------------------------------------------- checks
REFERENCE = HERE / "reference_files.sha256"


def _manifests():
    """:mod:`hinas.data.manifest`: when a set is complete (names and SHA-256 listed, or its count)."""
    _importing()
    import hinas.data.manifest as manifests
    return manifests


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(path: Path | None = None):
    """The checksums a set must match: ``path`` (``--manifest``), else ``reference_files.sha256``."""
    m = _manifests()
    if path is None:
        return _checked(m.read_manifest, REFERENCE, "restore the file from the repository", REFERENCE.name, True)
    return _checked(m.read_manifest, path, "give a 'SHA256  FOLDER/NAME' list (as sha256sum writes, run in the "
                    "data root) to --manifest")


def reference_checksums() -> dict[str, str]:
    """{``FOLDER/NAME``: SHA-256} of ``reference_files.sha256``."""
    return dict(load_manifest().table)


# ------------------------------------------------------------------------------ extraction
def max_extract_bytes() -> int:
    """Cap on what one archive may unpack to (the largest, DIV2K train HR, is ~3.5 GB)."""
    return int(os.environ.get("HINAS_MAX_EXTRACT_BYTES", 64 * 1024**3))


def safe_extract(archive: Path, dest: Path) -> dict:
    """Extract the image members of a zip/tar(.gz) into dest (:func:`hinas.data.importing.safe_extract`:
    no paths outside it, links, special files, images over ``max_image_bytes``, or more than
    ``max_extract_bytes`` / the free space). Returns {extracted path: member name}."""
    return _checked(_importing().safe_extract, archive, dest, max_extract_bytes(), max_image_bytes())


# ------------------------------------------------------------------------------- download
def _copy_with_progress(src, write, name: str, start: int, total: int | None) -> None:
    """Copy in 1 MiB chunks with a progress bar on stderr (tqdm; none without it)."""
    try:
        from tqdm import tqdm
    except ImportError:  # no progress bar then
        tqdm = None
    bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
               disable=not sys.stderr.isatty(), file=sys.stderr) if tqdm else None
    try:
        while chunk := src.read(1 << 20):
            write(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()


class _WriteFailed(Exception):
    """A local write of a download failed (full disk, permission); not a network error."""


def _writer(fh):
    def write(chunk):
        try:
            fh.write(chunk)
            fh.flush()
        except OSError as exc:
            raise _WriteFailed(exc) from None
    return write


def fetch(url: str, target: Path, sha256: str | None) -> Path:
    """Download url to target, resuming a previous ``target.part``; verify sha256 if known.

    A network failure keeps the ``.part`` file (run again to resume); a local write failure
    (a full disk, a permission) removes it and names it."""
    if target.exists():
        return target
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            resumed = have and resp.status == 206
            length = resp.headers.get("Content-Length")
            expected = (have if resumed else 0) + int(length) if length else None
            try:
                fh = open(part, "ab" if resumed else "wb")
            except OSError as exc:
                raise _WriteFailed(exc) from None
            with fh:
                _copy_with_progress(resp, _writer(fh), target.name, have if resumed else 0, expected)
    except _WriteFailed as failed:
        part.unlink(missing_ok=True)
        exc = failed.args[0]
        raise DownloadError(f"{q(part)}: {exc.strerror or exc}; {_DISK_FIX}; the partial download was "
                            f"removed") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"{url}: download failed ({exc}); run again to resume, or fetch it by hand "
                            f"and use --from") from None
    if expected is not None and part.stat().st_size < expected:
        raise DownloadError(f"{url}: download interrupted at {part.stat().st_size} of {expected} bytes; "
                            f"run again to resume")
    digest = sha256_of(part)
    if sha256 and digest != sha256:
        part.unlink()
        raise DownloadError(f"{url}: checksum mismatch (got {digest[:12]}..., expected {sha256[:12]}...); "
                            f"the partial file was removed, run again")
    part.replace(target)
    print(f"{target.name}: sha256 {digest}")
    return target


# --------------------------------------------------------------------------- a --from folder
def check_no_links(folder: Path) -> None:
    """Refuse a folder to import from that is, or holds, a symbolic link (file or folder; walked
    without following links): a set is installed only from real files, never through a link."""
    if folder.is_symlink():
        raise DownloadError(f"{q(folder)}: a symbolic link (to {q(folder.resolve())}); a set is installed only from "
                            f"real files: give the real folder to --from")
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            if p.is_symlink():
                target = p.resolve()
                if target != root and root not in target.parents:
                    raise DownloadError(f"{q(p)}: symbolic link to {q(target)}, outside the folder being "
                                        f"imported ({q(folder)}); copy the real files in, or remove the link")
                raise DownloadError(f"{q(p)}: symbolic link to {q(target)} in the folder being imported; a set is "
                                    f"installed only from real files: copy the real file in instead of the link "
                                    f"(or remove it), and run again; nothing was installed")



# ------------------------------------------------------------------------------- installing
def stage(root: Path, parts: list[tuple[list[Path], str]], stage_dir: Path) -> None:
    """Copy a planned set into ``stage_dir`` (a temporary folder under the root)."""
    for files, rel in parts:
        d = stage_dir / rel
        for f in files:
            target = d / f.name
            try:
                d.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
            except OSError as exc:
                target.unlink(missing_ok=True)
                raise _local_error(exc, root / rel / f.name) from None


def move_into_place(root: Path, name: str, stage_dir: Path) -> None:
    """Rename a staged set into the root (one rename: never a half-installed set)."""
    folder = _spec(name)["folder"]
    dest = root / folder
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_dir():
            dest.rmdir()  # empty (checked by plan)
        os.replace(stage_dir / folder, dest)
    except OSError as exc:
        raise _local_error(exc, dest) from None


def _sources(names, root: Path, local: Path | None, tmp: Path) -> list[tuple]:
    """(name, folder to take it from, how to name it, label for files, is the set's own download)
    per set; archives extracted."""
    if local is not None and local.is_dir():
        check_no_links(local)
        if not any(True for _ in local.iterdir()):
            raise DownloadError(f"{q(local)}: empty folder")
        return [(n, local, q(local), q, False) for n in names]
    if local is not None:
        members = safe_extract(local, tmp / "x")
        return [(n, tmp / "x", q(local), lambda p: f"{q(local)}: member '{members.get(p, p.name)}'", False)
                for n in names]
    out = []
    for i, n in enumerate(names):
        info = _spec(n)
        archive = root / ".downloads" / Path(info["urls"][0]).name
        archive.parent.mkdir(parents=True, exist_ok=True)
        fetch(info["urls"][0], archive, info["sha256"])
        members = safe_extract(archive, tmp / f"x{i}")
        out.append((n, tmp / f"x{i}", q(archive),
                    lambda p, a=archive, m=members: f"{q(a)}: member '{m.get(p, p.name)}'", True))
    return out


def obtain_all(names, root: Path, local: Path | None, manifest=None) -> dict[str, str]:
    """Find and check every set first (images, completeness against ``manifest``, SHA-256 of the
    copies), then install them all; {name: what happened}."""
    m = _manifests()
    manifest = manifest or load_manifest()
    status = {}
    for n in names:  # present only when complete; an incomplete or different set is refused
        found = _checked(m.installed, root, n, _spec(n), manifest)
        if found is not None:
            status[n] = "already present" + _summary(*found, manifest)
    todo = [n for n in names if n not in status]
    if not todo:
        return status
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        tmp = Path(tmp)
        sources = _sources(todo, root, local, tmp)
        plans = {n: plan(src, n, root, where, label, own) for n, src, where, label, own in sources}
        for n, _, where, label, _ in sources:  # every set of the call complete before any copy
            _checked(m.require_complete, n, _spec(n), plans[n], manifest, where, label)
        total = sum(f.stat().st_size for p in plans.values() for files, _ in p for f in files)
        free = shutil.disk_usage(root).free
        if total + (64 << 20) > free:
            raise DownloadError(f"{q(local or root)}: {total / 1e9:.1f} GB of images but only {free / 1e9:.1f} GB "
                                f"free under {q(root)}; free some space and run again")
        for i, (n, p) in enumerate(plans.items()):  # every set copied before the first lands
            stage(root, p, tmp / f"stage{i}")
        matched = {n: _checked(m.require_same_bytes, plans[n], tmp / f"stage{i}", manifest, label)
                   for i, (n, _, _, label, _) in enumerate(sources)}  # the copies, as they will land
        for i, n in enumerate(plans):
            move_into_place(root, n, tmp / f"stage{i}")
    for n in todo:
        status[n] = "installed" + _summary(matched[n], sum(len(files) for files, _ in plans[n]), manifest)
    return status


def _summary(matched: int, images: int, manifest) -> str:
    if matched:
        return f" ({matched} files match {manifest.what})"
    return f" ({images} images, the set's count; {manifest.name} lists no checksums for it)"


def _new_folders(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out


def main(argv=None, prog: str = "download.py") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], epilog=RULE)
    ap.add_argument("datasets", nargs="*", help=f"datasets: {', '.join(SOURCES)}, Manga109 (default: all)")
    ap.add_argument("--root", required=False, default=None, help="data root (default: $HINAS_DATA)")
    ap.add_argument("--from", dest="local", default=None, help="import a local folder or archive instead of downloading")
    ap.add_argument("--manifest", default=None, metavar="FILE",
                    help="check the sets against this 'SHA256  FOLDER/NAME' list (as sha256sum writes, run in the "
                         "data root) instead of data_scripts/reference_files.sha256; a set it does not list must "
                         "hold its image count")
    ap.add_argument("--list", action="store_true", help="list the datasets and their sources")
    args = ap.parse_args(argv)
    if args.list:
        for name, s in SOURCES.items():
            print(f"{name:10s} -> {s['folder']:16s} {s['urls'][0]}")
        print(f"{'Manga109':10s} -> licence required: {MANGA109}")
        return 0

    root = Path(args.root or os.environ.get("HINAS_DATA") or "")
    if not str(root):
        print(f"{prog}: error: give --root DIR (or set HINAS_DATA)", file=sys.stderr)
        return 2
    names = [ALIASES.get(n, n) for n in (args.datasets or list(SOURCES))]
    made = _new_folders(root)
    try:
        for name in names:
            if name not in SOURCES and name != "Manga109":
                raise DownloadError(f"unknown dataset '{name}'; known: {', '.join(SOURCES)}, Manga109")
        local = Path(args.local) if args.local else None
        if local is not None and not local.exists():
            raise DownloadError(f"{q(local)}: --from path does not exist")
        if "Manga109" in names and local is None:
            print(MANGA109)
            names = [n for n in names if n != "Manga109"]
        names = list(dict.fromkeys(names))
        if names:
            manifest = load_manifest(Path(args.manifest) if args.manifest else None)
            root.mkdir(parents=True, exist_ok=True)
            for name, what in obtain_all(names, root, local, manifest).items():
                print(f"{name}: {what}")
    except (DownloadError, OSError) as exc:
        for folder in made:  # a refused call leaves no empty data root behind
            try:
                folder.rmdir()
            except OSError:
                break
        if isinstance(exc, DownloadError):
            print(f"{prog}: error: {exc}", file=sys.stderr)
        else:  # a full disk, a permission: one line, not a traceback
            where = q(exc.filename) if exc.filename is not None else q(root)
            print(f"{prog}: error: {where}: {exc.strerror or exc}; check the free space and permissions "
                  f"and run again", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
