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
* Archives (zip, tar, tar.gz) are extracted safely: absolute paths, ``..`` components, links
  and special files are refused, and nothing is written outside the target folder.
* Imported or extracted images are checked against ``reference_files.sha256`` (the checksums
  of ``../shared/data``) where that file lists them.
* It is idempotent: datasets already present are left alone.
* Manga109 needs a licence application; ``download.py Manga109`` says how.

Errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}

# dataset -> where it lives under the root, and where it comes from.
SOURCES = {
    "BSDS500": {
        "folder": "BSDS500",
        "urls": ["https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"],
        "sha256": None,
        # inside the archive: BSR/BSDS500/data/images/{train,val,test}/*.jpg
        "subdir": "images",
    },
    "Set5": {"folder": "Set5", "urls": ["https://huggingface.co/datasets/eugenesiow/Set5/resolve/main/data/Set5_HR.tar.gz"],
             "sha256": None, "subdir": None},
    "Set14": {"folder": "Set14", "urls": ["https://huggingface.co/datasets/eugenesiow/Set14/resolve/main/data/Set14_HR.tar.gz"],
              "sha256": None, "subdir": None},
    "Urban100": {"folder": "Urban100",
                 "urls": ["https://huggingface.co/datasets/eugenesiow/Urban100/resolve/main/data/Urban100_HR.tar.gz"],
                 "sha256": None, "subdir": None},
    # the folder name hinas.data.datasets looks for first (DIV2K's own archive layout)
    "DIV2K": {"folder": "DIV2K/DIV2K_train_HR",
              "urls": ["https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip"], "sha256": None, "subdir": None},
}
ALIASES = {"B100": "BSDS500", "BSD100": "BSDS500", "BSD200": "BSDS500"}
MANGA109 = ("Manga109 is distributed under a licence for academic use: apply at "
            "http://www.manga109.org/en/download.html, then import your copy with "
            "'download.py --from DIR --root ROOT' (folder Manga109/ with the PNG pages).")


class DownloadError(Exception):
    pass


# ----------------------------------------------------------------------------------- checks
def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def reference_checksums() -> dict[str, str]:
    table = {}
    ref = HERE / "reference_files.sha256"
    if ref.exists():
        for line in ref.read_text().splitlines():
            if line.strip():
                digest, name = line.split(None, 1)
                table[name.strip()] = digest
    return table


def verify_tree(root: Path, folder: str) -> int:
    """Compare files under root/folder with the reference checksums; return how many matched."""
    table = reference_checksums()
    checked = 0
    for rel, digest in table.items():
        if not rel.startswith(folder.rstrip("/") + "/"):
            continue
        path = root / rel
        if path.exists():
            if sha256_of(path) != digest:
                raise DownloadError(f"{path}: checksum mismatch (expected {digest[:12]}...); the file is damaged "
                                    f"or a different version; delete it and run again")
            checked += 1
    return checked


def present(root: Path, name: str) -> bool:
    folder = root / SOURCES[name]["folder"]
    return folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*"))


# ------------------------------------------------------------------------------ extraction
def _check_member_name(name: str, archive: Path) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DownloadError(f"{archive}: refuses to extract '{name}': absolute path in the archive (unsafe archive)")
    if ".." in p.parts:
        raise DownloadError(f"{archive}: refuses to extract '{name}': '..' in the path (unsafe archive)")
    return p


def max_extract_bytes() -> int:
    """Cap on what one archive may unpack to (the largest, DIV2K train HR, is ~3.5 GB)."""
    return int(os.environ.get("HINAS_MAX_EXTRACT_BYTES", 64 * 1024**3))


def _check_room(archive: Path, dest: Path, total: int) -> None:
    """Refuse an archive that unpacks to more than the cap or than the free space (a bomb)."""
    cap = max_extract_bytes()
    if total > cap:
        raise DownloadError(f"{q(archive)}: would unpack to {total / 1e9:.1f} GB, more than the {cap / 1e9:.1f} GB "
                            f"limit (an archive bomb, or set HINAS_MAX_EXTRACT_BYTES); nothing was extracted")
    free = shutil.disk_usage(dest).free
    if total + (256 << 20) > free:
        raise DownloadError(f"{q(archive)}: would unpack to {total / 1e9:.1f} GB but only {free / 1e9:.1f} GB are "
                            f"free under {q(dest)}; free some space and run again; nothing was extracted")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract zip/tar(.gz) into dest, refusing anything that could land outside it, links,
    special files, and archives that unpack to more than the cap or the free disk space."""
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_member_name(info.filename, archive)
                mode = (info.external_attr >> 16) & 0o170000
                if mode == 0o120000:
                    raise DownloadError(f"{archive}: refuses to extract '{info.filename}': symbolic link (unsafe archive)")
            # zipfile stops each member at its declared size, so the declared total bounds the output
            _check_room(archive, dest, sum(i.file_size for i in infos))
            for info in infos:
                zf.extract(info, dest)
        return
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError:
        raise DownloadError(f"{archive}: not a zip or tar archive; delete it and download again") from None
    with tf:
        members = tf.getmembers()
        for m in members:
            _check_member_name(m.name, archive)
            if m.issym() or m.islnk():
                raise DownloadError(f"{archive}: refuses to extract '{m.name}': link to '{m.linkname}' (unsafe archive)")
            if not (m.isfile() or m.isdir()):
                raise DownloadError(f"{archive}: refuses to extract '{m.name}': special file (unsafe archive)")
        _check_room(archive, dest, sum(m.size for m in members if m.isfile()))
        for m in members:
            tf.extract(m, dest, set_attrs=False)


# ------------------------------------------------------------------------------- download
def _copy_with_progress(src, dst, name: str, start: int, total: int | None) -> None:
    """Copy in 1 MiB chunks with a progress bar on stderr (tqdm; plain copy without it)."""
    try:
        from tqdm import tqdm
    except ImportError:  # the script also runs with the standard library alone
        shutil.copyfileobj(src, dst, 1 << 20)
        return
    with tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
              disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
            bar.update(len(chunk))


def fetch(url: str, target: Path, sha256: str | None) -> Path:
    """Download url to target, resuming a previous ``target.part``; verify sha256 if known."""
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
            with open(part, "ab" if resumed else "wb") as fh:
                _copy_with_progress(resp, fh, target.name, have if resumed else 0, expected)
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


def _install(src_root: Path, root: Path, name: str) -> None:
    """Move the dataset's images from an extracted/copied tree into root/folder."""
    folder = SOURCES[name]["folder"]
    dest = root / folder
    if name == "BSDS500":
        found = [d for d in src_root.rglob("*") if d.is_dir() and {"train", "val", "test"} <= {c.name for c in d.iterdir() if c.is_dir()}]
        if not found:
            raise DownloadError(f"{src_root}: no BSDS500 train/val/test folders found; is this the BSDS500 archive?")
        for split in ("train", "val", "test"):
            _copy_images(found[0] / split, dest / split)
        return
    candidates = [d for d in [src_root, *src_root.rglob("*")] if d.is_dir() and d.name.lower().startswith(name.lower())]
    source = candidates[0] if candidates else src_root
    _copy_images(source, dest)


def q(path) -> str:
    """A path safe to print: escaped when it holds control characters."""
    s = str(path)
    return repr(s) if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in s) else s


def check_no_links_out(folder: Path) -> None:
    """Refuse a folder to import from that holds a symbolic link leading outside it.

    Walks without following links; every link (file or folder) must resolve inside ``folder``.
    """
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                target = p.resolve()
                if target != root and root not in target.parents:
                    raise DownloadError(f"{q(p)}: symbolic link to {q(target)}, outside the folder being "
                                        f"imported ({q(folder)}); copy the real files in, or remove the link")


def _image_files(src: Path) -> list[Path]:
    """Image files under src; links are followed only when they stay inside src (checked before)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        for name in filenames:
            p = Path(dirpath) / name
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                out.append(p)
    return sorted(out)


def _copy_images(src: Path, dest: Path) -> None:
    check_no_links_out(src)
    files = _image_files(src)
    if not files:
        raise DownloadError(f"{q(src)}: no images found")
    total = sum(p.stat().st_size for p in files)
    dest.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest).free
    if total + (64 << 20) > free:
        raise DownloadError(f"{q(src)}: {total / 1e9:.1f} GB of images but only {free / 1e9:.1f} GB free under "
                            f"{q(dest)}; free some space and run again")
    for p in files:
        shutil.copy2(p, dest / p.name)


def obtain(name: str, root: Path, local: Path | None) -> str:
    if present(root, name):
        verify_tree(root, SOURCES[name]["folder"])
        return "already present"
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        tmp = Path(tmp)
        if local is not None:
            if local.is_dir():
                check_no_links_out(local)
                if not any(True for _ in local.rglob("*")):
                    raise DownloadError(f"{q(local)}: empty folder")
                src = local / SOURCES[name]["folder"] if (local / SOURCES[name]["folder"]).is_dir() else local
            else:
                safe_extract(local, tmp / "x")
                src = tmp / "x"
        else:
            src_info = SOURCES[name]
            archive = root / ".downloads" / Path(src_info["urls"][0]).name
            archive.parent.mkdir(parents=True, exist_ok=True)
            fetch(src_info["urls"][0], archive, src_info["sha256"])
            safe_extract(archive, tmp / "x")
            src = tmp / "x"
        _install(src, root, name)
    n = verify_tree(root, SOURCES[name]["folder"])
    return f"installed ({n} files match the reference checksums)" if n else "installed"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="*", help=f"datasets: {', '.join(SOURCES)}, Manga109 (default: all)")
    ap.add_argument("--root", required=False, default=None, help="data root (default: $HINAS_DATA)")
    ap.add_argument("--from", dest="local", default=None, help="import a local folder or archive instead of downloading")
    ap.add_argument("--list", action="store_true", help="list the datasets and their sources")
    args = ap.parse_args(argv)
    if args.list:
        for name, s in SOURCES.items():
            print(f"{name:10s} -> {s['folder']:16s} {s['urls'][0]}")
        print(f"{'Manga109':10s} -> licence required: {MANGA109}")
        return 0

    root = Path(args.root or os.environ.get("HINAS_DATA") or "")
    if not str(root):
        print("download.py: error: give --root DIR (or set HINAS_DATA)", file=sys.stderr)
        return 2
    names = [ALIASES.get(n, n) for n in (args.datasets or list(SOURCES))]
    try:
        root.mkdir(parents=True, exist_ok=True)
        local = Path(args.local) if args.local else None
        if local is not None and not local.exists():
            raise DownloadError(f"{local}: --from path does not exist")
        for name in names:
            if name == "Manga109":
                print(MANGA109)
                continue
            if name not in SOURCES:
                raise DownloadError(f"unknown dataset '{name}'; known: {', '.join(SOURCES)}, Manga109")
            print(f"{name}: {obtain(name, root, local)}")
    except DownloadError as exc:
        print(f"download.py: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a permission: one line, not a traceback
        where = q(exc.filename) if exc.filename is not None else q(root)
        print(f"download.py: error: {where}: {exc.strerror or exc}; check the free space and permissions "
              f"and run again", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
