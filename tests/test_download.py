"""data_scripts/download.py, offline: local folders and archives, hostile archives, resume; a set
is installed only when complete against its manifest, and never a link (issue 34).

Synthetic sets (random PNGs) are not the benchmark sets, so their imports pass a ``--manifest``
written here (:func:`_manifest`); the default manifest is exercised with the real Set5."""

import functools
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "data_scripts" / "download.py"
sys.path.insert(0, str(SCRIPT.parent))
import download  # noqa: E402


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def _fake_set5(folder: Path) -> Path:
    d = folder / "Set5"
    d.mkdir(parents=True)
    for i in range(2):
        Image.fromarray((np.random.default_rng(i).random((16, 16, 3)) * 255).astype("uint8")).save(d / f"img{i}.png")
    return folder


def _manifest(path: Path, folders: dict) -> Path:
    """A ``SHA256  FOLDER/NAME`` list (as sha256sum writes) of the images in each folder:
    ``{"Set5": Path(...)}`` lists ``Set5/<name>`` for every file in that folder."""
    lines = [f"{download.sha256_of(f)}  {rel}/{f.name}"
             for rel, d in folders.items() for f in sorted(Path(d).iterdir())]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_from_folder_and_idempotent(tmp_path):
    src = _fake_set5(tmp_path / "copy")
    m = _manifest(tmp_path / "m.sha256", {"Set5": src / "Set5"})
    root = tmp_path / "data"
    p = run("Set5", "--from", src, "--root", root, "--manifest", m)
    assert p.returncode == 0, p.stderr
    assert "Set5: installed (2 files match the checksums in" in p.stdout
    assert sorted(x.name for x in (root / "Set5").iterdir()) == ["img0.png", "img1.png"]
    again = run("Set5", "--from", src, "--root", root, "--manifest", m)
    assert again.returncode == 0 and "already present" in again.stdout
    # against the repository's manifest the two synthetic images are not Set5: not "already present"
    other = run("Set5", "--from", src, "--root", root)
    assert other.returncode == 2 and "already present" not in other.stdout + other.stderr
    assert "Set5/baby.png is missing" in other.stderr and len(other.stderr.strip().splitlines()) == 1


def test_import_from_tar_archive(tmp_path):
    src = _fake_set5(tmp_path / "copy")
    archive = tmp_path / "set5.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src / "Set5", arcname="Set5_HR")
    root = tmp_path / "data"
    p = run("Set5", "--from", archive, "--root", root, "--manifest", _manifest(tmp_path / "m", {"Set5": src / "Set5"}))
    assert p.returncode == 0, p.stderr
    assert len(list((root / "Set5").glob("*.png"))) == 2


def test_div2k_import_lands_where_the_loader_looks(tmp_path):
    """DIV2K's archive (DIV2K_train_HR/*.png) imported, then found as DIV2K-train for SR training."""
    from hinas.data.datasets import list_datasets, load_dataset

    archive = tmp_path / "DIV2K_train_HR.zip"
    for i in range(2):
        _png(tmp_path / "imgs" / f"{i + 1:04d}.png", (24, 24), seed=i)
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted((tmp_path / "imgs").iterdir()):
            zf.write(f, f"DIV2K_train_HR/{f.name}")
    root = tmp_path / "data"
    # two images are not DIV2K's 800, which reference_files.sha256 does not list: refused, nothing installed
    p = run("DIV2K", "--from", archive, "--root", root)
    assert p.returncode == 2 and "2 images for DIV2K/DIV2K_train_HR/ but the set has 800" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not root.exists()
    # a manifest listing them: installed where the loader looks
    m = _manifest(tmp_path / "m.sha256", {"DIV2K/DIV2K_train_HR": tmp_path / "imgs"})
    p = run("DIV2K", "--from", archive, "--root", root, "--manifest", m)
    assert p.returncode == 0, p.stderr
    assert list_datasets(root)["DIV2K-train"]["found"]
    assert len(load_dataset("DIV2K-train", root)) == 2


def _tar_with(tmp_path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        tf.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return archive


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "hardlink"])
def test_hostile_tar_is_refused(tmp_path, kind):
    m = tarfile.TarInfo({"traversal": "../../escaped.png", "absolute": "/tmp/escaped_abs.png",
                         "symlink": "Set5/link.png", "hardlink": "Set5/hard.png"}[kind])
    if kind == "symlink":
        m.type, m.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        m.type, m.linkname = tarfile.LNKTYPE, "../../outside"
    else:
        m.size = 1
    archive = _tar_with(tmp_path, m)
    root = tmp_path / "data"
    p = run("Set5", "--from", archive, "--root", root)
    assert p.returncode == 2
    assert "unsafe archive" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "escaped.png").exists() and not Path("/tmp/escaped_abs.png").exists()
    assert not (root / "Set5").exists()


def test_hostile_zip_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escaped.png", b"x")
    p = run("Set5", "--from", archive, "--root", tmp_path / "data")
    assert p.returncode == 2 and "'..'" in p.stderr
    assert not (tmp_path / "escaped.png").exists()


def test_unknown_dataset_and_manga109(tmp_path):
    p = run("Set99", "--root", tmp_path)
    assert p.returncode == 2 and "unknown dataset" in p.stderr
    m = run("Manga109", "--root", tmp_path)
    assert m.returncode == 0 and "licence" in m.stdout


class _FlakyHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a file; the first plain GET is cut short, later Range requests are honoured."""

    calls = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        data = (Path(self.directory) / "blob.bin").read_bytes()
        rng = self.headers.get("Range")
        self.calls.append(rng)
        if rng is None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 3])  # connection drops mid-way
            self.wfile.flush()
            self.close_connection = True
            return
        start = int(rng.split("=")[1].split("-")[0])
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


def test_resumed_download_and_checksum(tmp_path):
    blob = np.random.default_rng(0).bytes(300_000)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "blob.bin").write_bytes(blob)
    handler = functools.partial(_FlakyHandler, directory=str(tmp_path / "srv"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/blob.bin"
    target = tmp_path / "blob.bin"
    try:
        with pytest.raises(download.DownloadError):
            download.fetch(url, target, download.hashlib.sha256(blob).hexdigest())
        part = target.with_name("blob.bin.part")
        assert 0 < part.stat().st_size < len(blob)
        download.fetch(url, target, download.hashlib.sha256(blob).hexdigest())
        assert target.read_bytes() == blob
        assert any(c and c.startswith("bytes=") for c in _FlakyHandler.calls)
        with pytest.raises(download.DownloadError, match="interrupted"):
            download.fetch(url, tmp_path / "other.bin", "0" * 64)
        with pytest.raises(download.DownloadError, match="checksum mismatch"):
            download.fetch(url, tmp_path / "other.bin", "0" * 64)  # resumes, then fails the check
        assert not (tmp_path / "other.bin").exists() and not (tmp_path / "other.bin.part").exists()
    finally:
        server.shutdown()


def test_import_real_copy_verifies_reference_checksums(tmp_path, real_data_root):
    p = run("Set5", "Set14", "--from", real_data_root, "--root", tmp_path / "data")
    assert p.returncode == 0, p.stderr
    assert "Set5: installed (5 files match the reference checksums)" in p.stdout
    assert "Set14: installed (14 files match the reference checksums)" in p.stdout


# --------------------------- issue 23: only the named set, only good images, nothing half-written
def _refused(capsys, *args, contains=()):
    """``hinas data download ...`` refused: exit 2, one line naming what is asked, no traceback."""
    from hinas.cli import main

    capsys.readouterr()
    rc = main(["data", "download", *map(str, args)])
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("hinas: error: ") and "Traceback" not in err, err
    for c in contains:
        assert c.lower() in lines[0].lower(), (c, lines[0])
    return lines[0]


def _png(path: Path, size=(16, 16), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype("uint8")).save(path)
    return path


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _nothing_written(tmp_path, root):
    assert not root.exists(), sorted(root.rglob("*"))  # not even an empty data root
    assert not any(p.name in ("evil.png", "escaped.png") for p in tmp_path.rglob("*"))


def test_folder_without_the_set_is_refused(tmp_path, capsys):
    _png(tmp_path / "copy" / "random" / "a.png")
    (tmp_path / "copy" / "notes.txt").write_text("hello")
    root = tmp_path / "data"
    _refused(capsys, "Set5", "--from", tmp_path / "copy", "--root", root, contains=("no Set5 folder", "copy"))
    _nothing_written(tmp_path, root)
    # a Set14 folder is not Set5; Set50 is not Set5 either
    _png(tmp_path / "copy" / "Set14" / "a.png")
    _png(tmp_path / "copy" / "Set50" / "a.png")
    _refused(capsys, "Set5", "--from", tmp_path / "copy", "--root", root, contains=("no Set5 folder",))
    _nothing_written(tmp_path, root)
    # BSDS500: train/val/test alone are not enough, they must sit under a BSDS500/BSR folder
    for split in ("train", "val", "test"):
        _png(tmp_path / "other" / "images" / split / "a.png")
    _refused(capsys, "BSDS500", "--from", tmp_path / "other", "--root", root, contains=("BSDS500",))
    _nothing_written(tmp_path, root)


@pytest.mark.parametrize("bad", ["text", "16bit", "bomb", "alpha", "grey"])
def test_a_bad_image_in_the_set_installs_nothing(tmp_path, capsys, bad):
    src = tmp_path / "copy" / "Set5"
    _png(src / "good.png")
    target = src / "bad.png"
    if bad == "text":
        target.write_text("not an image")
    elif bad == "16bit":
        Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(target)
    elif bad == "bomb":
        _png_claiming(target, 30000, 30000)
    elif bad == "alpha":
        Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(target)
    else:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(target)
    root = tmp_path / "data"
    _refused(capsys, "Set5", "--from", tmp_path / "copy", "--root", root,
             contains=("bad.png", {"text": "not an image", "16bit": "16-bit", "bomb": "pixels", "alpha": "alpha",
                                   "grey": "grey image"}[bad]))
    _nothing_written(tmp_path, root)


def test_image_over_the_byte_cap_is_refused(tmp_path, capsys, monkeypatch):
    _png(tmp_path / "copy" / "Set5" / "a.png", (64, 64))
    archive = tmp_path / "set5.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "copy" / "Set5" / "a.png", "Set5/a.png")
    monkeypatch.setenv("HINAS_MAX_IMAGE_BYTES", "1000")
    root = tmp_path / "data"
    _refused(capsys, "Set5", "--from", tmp_path / "copy", "--root", root, contains=("a.png", "MiB"))
    _refused(capsys, "Set5", "--from", archive, "--root", root, contains=("set5.zip", "Set5/a.png", "MiB"))
    _nothing_written(tmp_path, root)


def test_hostile_or_bad_archive_members_install_nothing(tmp_path, capsys):
    good = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good, "PNG")
    root = tmp_path / "data"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("Set5/a.png", good.getvalue())
        zf.writestr("../evil.png", good.getvalue())
    _refused(capsys, "Set5", "--from", evil, "--root", root, contains=("evil.zip", "'..'"))
    _nothing_written(tmp_path, root)
    text = tmp_path / "text.zip"
    with zipfile.ZipFile(text, "w") as zf:
        zf.writestr("Set5/a.png", good.getvalue())
        zf.writestr("Set5/b.png", b"just text")
    _refused(capsys, "Set5", "--from", text, "--root", root, contains=("text.zip", "member", "Set5/b.png"))
    _nothing_written(tmp_path, root)


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_truncated_archive_is_one_line(tmp_path, capsys, kind):
    src = tmp_path / "copy"
    for i in range(3):
        _png(src / "Set5" / f"img{i}.png", (48, 48), seed=i)
    archive = tmp_path / f"set5.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in sorted((src / "Set5").iterdir()):
                zf.write(p, f"Set5/{p.name}")
    else:
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(src / "Set5", arcname="Set5")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 2 // 3])
    root = tmp_path / "data"
    _refused(capsys, "Set5", "--from", archive, "--root", root, contains=(archive.name, "truncated"))
    _nothing_written(tmp_path, root)


@pytest.mark.parametrize("errno_name", ["ENOSPC", "EACCES"])
def test_disk_full_or_permission_while_installing_leaves_nothing(tmp_path, capsys, monkeypatch, errno_name):
    import errno
    import shutil

    _png(tmp_path / "copy" / "Set5" / "a.png")
    _png(tmp_path / "copy" / "Set5" / "b.png", seed=1)
    m = _manifest(tmp_path / "m.sha256", {"Set5": tmp_path / "copy" / "Set5"})
    root = tmp_path / "data"
    root.mkdir()
    real_copy, calls = shutil.copyfile, []

    def failing(src, dst, *a, **k):
        calls.append(dst)
        if len(calls) == 2:  # the first image copied, the second fails half-way
            Path(dst).write_bytes(b"half")
            raise OSError(getattr(errno, errno_name), os.strerror(getattr(errno, errno_name)))
        return real_copy(src, dst, *a, **k)

    monkeypatch.setattr(shutil, "copyfile", failing)
    _refused(capsys, "Set5", "--from", tmp_path / "copy", "--root", root, "--manifest", m,
             contains=(str(root / "Set5" / "b.png"), os.strerror(getattr(errno, errno_name))))
    assert list(root.iterdir()) == []  # no Set5, no temporary folder, no .part


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def test_disk_full_while_downloading_removes_the_part_file(tmp_path, monkeypatch):
    import errno

    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "blob.bin").write_bytes(b"x" * 3_000_000)
    handler = functools.partial(_QuietHandler, directory=str(tmp_path / "srv"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    real_open = open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(download, "open", lambda p, mode="r", *a, **k: Full(real_open(p, mode, *a, **k)),
                        raising=False)
    target = tmp_path / "blob.bin"
    try:
        with pytest.raises(download.DownloadError, match="No space left") as exc:
            download.fetch(f"http://127.0.0.1:{server.server_address[1]}/blob.bin", target, None)
    finally:
        server.shutdown()
    assert "blob.bin.part" in str(exc.value) and "\n" not in str(exc.value)
    assert not target.exists() and not target.with_name("blob.bin.part").exists()


def test_bsds500_and_counts_from_a_folder(tmp_path, capsys):
    from hinas.cli import main

    images = tmp_path / "copy" / "BSDS500" / "images"
    for split in ("train", "val", "test"):
        _png(images / split / f"{split}.png")
    (tmp_path / "copy" / "BSDS500" / "groundTruth" / "train").mkdir(parents=True)
    root = tmp_path / "data"
    # one image a split is not the benchmark set that reference_files.sha256 lists
    _refused(capsys, "BSDS500", "--from", tmp_path / "copy", "--root", root,
             contains=("BSDS500/train/", "is missing", "of the 200 images"))
    _nothing_written(tmp_path, root)
    # a manifest listing two of the splits: those are checked against it, the third by its count (100)
    m = _manifest(tmp_path / "m.sha256", {"BSDS500/train": images / "train", "BSDS500/test": images / "test"})
    _refused(capsys, "BSDS500", "--from", tmp_path / "copy", "--root", root, "--manifest", m,
             contains=("1 images for BSDS500/val/ but the set has 100",))
    m = _manifest(tmp_path / "m.sha256", {f"BSDS500/{s}": images / s for s in ("train", "val", "test")})
    assert main(["data", "download", "BSDS500", "--from", str(tmp_path / "copy"), "--root", str(root),
                 "--manifest", str(m)]) == 0
    out, err = capsys.readouterr()
    assert "BSDS500: installed (3 files match the checksums in" in out and not err
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png")) == [
        "BSDS500/test/test.png", "BSDS500/train/train.png", "BSDS500/val/val.png"]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_downloaded_archive_is_checked_and_installed(tmp_path, capsys, monkeypatch):
    """The set's own download may hold its images in a folder of any name (or none); they are
    checked as any import, and a bad one installs nothing (the archive stays for a rerun)."""
    srv = tmp_path / "srv"
    for i in range(2):
        _png(srv / "flat" / f"img{i}.png", seed=i)
    with tarfile.open(srv / "good.tar.gz", "w:gz") as tf:
        for p in sorted((srv / "flat").iterdir()):
            tf.add(p, arcname=p.name)
    m = _manifest(tmp_path / "m.sha256", {"Set5": srv / "flat"})
    (srv / "flat" / "img1.png").write_text("garbled")
    with tarfile.open(srv / "bad.tar.gz", "w:gz") as tf:
        tf.add(srv / "flat", arcname="HR")
    handler = functools.partial(_QuietHandler, directory=str(srv))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        monkeypatch.setitem(download.SOURCES["Set5"], "urls", [f"{base}/bad.tar.gz"])
        root = tmp_path / "bad"
        assert download.main(["Set5", "--root", str(root)]) == 2
        err = capsys.readouterr().err
        assert "bad.tar.gz: member 'HR/img1.png'" in err and len(err.strip().splitlines()) == 1, err
        assert [p.relative_to(root).as_posix() for p in root.rglob("*")] == [".downloads", ".downloads/bad.tar.gz"]
        monkeypatch.setitem(download.SOURCES["Set5"], "urls", [f"{base}/good.tar.gz"])
        root = tmp_path / "good"
        assert download.main(["Set5", "--root", str(root), "--manifest", str(m)]) == 0
        assert sorted(p.name for p in (root / "Set5").iterdir()) == ["img0.png", "img1.png"]
    finally:
        server.shutdown()


def test_every_set_of_the_call_is_checked_before_the_first_is_installed(tmp_path, capsys):
    _png(tmp_path / "copy" / "Set5" / "a.png")
    (tmp_path / "copy" / "Set14").mkdir()
    (tmp_path / "copy" / "Set14" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbled")
    root = tmp_path / "data"
    _refused(capsys, "Set5", "Set14", "--from", tmp_path / "copy", "--root", root, contains=("Set14", "b.png"))
    _nothing_written(tmp_path, root)  # Set5 was fine, but is not installed either


# ------------------------- issue 34: a set only when complete against its manifest, and never a link
def _copy_of(real: Path, dest: Path, names=None) -> Path:
    """``dest`` holding (some of) the real Set5's images, byte for byte."""
    import shutil

    dest.mkdir(parents=True)
    for f in sorted(real.iterdir()):
        if names is None or f.name in names:
            shutil.copyfile(f, dest / f.name)
    return dest


def test_four_of_five_real_images_install_nothing_and_the_full_set_then_installs(tmp_path, capsys, real_data_root):
    real = real_data_root / "Set5"
    names = sorted(p.name for p in real.iterdir())
    _copy_of(real, tmp_path / "copy" / "Set5", names[:4])
    root = tmp_path / "data"
    _refused(capsys, "Set5", "--from", tmp_path / "copy", "--root", root,
             contains=(f"Set5/{names[4]} is missing", "4 of the 5 images", "reference_files.sha256",
                       "nothing was installed"))
    _nothing_written(tmp_path, root)
    # a later import of the complete set installs it (it was not "already present")
    from hinas.cli import main

    capsys.readouterr()
    assert main(["data", "download", "Set5", "--from", str(real_data_root), "--root", str(root)]) == 0
    assert "Set5: installed (5 files match the reference checksums)" in capsys.readouterr().out
    assert sorted(p.name for p in (root / "Set5").iterdir()) == names
    assert main(["data", "download", "Set5", "--from", str(real_data_root), "--root", str(root)]) == 0
    assert "Set5: already present (5 files match the reference checksums)" in capsys.readouterr().out


def test_an_extra_image_is_refused(tmp_path, capsys, real_data_root):
    src = _copy_of(real_data_root / "Set5", tmp_path / "copy" / "Set5")
    _png(src / "zebra_extra.png", (32, 32))
    root = tmp_path / "data"
    _refused(capsys, "Set5", "--from", tmp_path / "copy", "--root", root,
             contains=("zebra_extra.png", "not one of the 5 images"))
    _nothing_written(tmp_path, root)
    # the same with a test manifest: one extra image beyond the two it lists
    _png(tmp_path / "own" / "Set5" / "a.png")
    _png(tmp_path / "own" / "Set5" / "b.png", seed=1)
    m = _manifest(tmp_path / "m.sha256", {"Set5": tmp_path / "own" / "Set5"})
    _png(tmp_path / "own" / "Set5" / "c.png", seed=2)
    _refused(capsys, "Set5", "--from", tmp_path / "own", "--root", root, "--manifest", m,
             contains=("c.png", "not one of the 2 images", "m.sha256"))
    _nothing_written(tmp_path, root)


def test_wrong_bytes_are_refused_before_anything_is_installed(tmp_path, capsys, monkeypatch, real_data_root):
    import shutil

    src = _copy_of(real_data_root / "Set5", tmp_path / "copy" / "Set5")
    victim = sorted(src.iterdir())[1]
    before = victim.read_bytes()
    Image.open(victim).convert("RGB").save(victim, compress_level=1)  # a valid image, re-encoded: other bytes
    assert victim.read_bytes() != before
    root = tmp_path / "data"
    _refused(capsys, "Set5", "--from", tmp_path / "copy", "--root", root,
             contains=(victim.name, "SHA-256", "different version", "nothing was installed"))
    _nothing_written(tmp_path, root)
    # the copies are what is checked: a copy changed on its way in installs nothing either
    _copy_of(real_data_root / "Set5", tmp_path / "good" / "Set5")
    real_copy = shutil.copyfile

    def damaging(s, d, *a, **k):
        out = real_copy(s, d, *a, **k)
        if Path(d).name == victim.name:
            with open(d, "ab") as fh:
                fh.write(b"\0")
        return out

    monkeypatch.setattr(shutil, "copyfile", damaging)
    root.mkdir()
    _refused(capsys, "Set5", "Set14", "--from", real_data_root, "--root", root, contains=(victim.name, "SHA-256"))
    assert list(root.iterdir()) == []  # neither set, no temporary folder


def test_an_incomplete_or_changed_set_in_the_root_is_not_already_present(tmp_path, capsys, real_data_root):
    root = tmp_path / "data"
    real = real_data_root / "Set5"
    names = sorted(p.name for p in real.iterdir())
    _copy_of(real, root / "Set5", names[:3])
    line = _refused(capsys, "Set5", "--from", real_data_root, "--root", root,
                    contains=(f"Set5/{names[3]} is missing", "3 of the 5", "move", "away"))
    assert "already present" not in line
    assert sorted(p.name for p in (root / "Set5").iterdir()) == names[:3]  # left as it was
    for n in names[3:]:
        (root / "Set5" / n).write_bytes((real / names[0]).read_bytes())  # all there, two of them wrong
    _refused(capsys, "Set5", "--from", real_data_root, "--root", root, contains=(names[3], "SHA-256", "move"))
    for n in names[3:]:
        (root / "Set5" / n).write_bytes((real / n).read_bytes())
    _png(root / "Set5" / "extra.png")
    _refused(capsys, "Set5", "--root", root, contains=("extra.png", "not one of the 5"))
    # a set the manifest does not list is present only with its count
    _png(tmp_path / "d2" / "DIV2K" / "DIV2K_train_HR" / "0001.png")
    _refused(capsys, "DIV2K", "--root", tmp_path / "d2", contains=("1 images for DIV2K/DIV2K_train_HR/", "800"))
    # nothing else of the call is installed
    (root / "Set5" / "extra.png").unlink()
    (root / "Set5" / names[0]).unlink()
    _refused(capsys, "Set5", "Set14", "--from", real_data_root, "--root", root, contains=(names[0], "missing"))
    assert not (root / "Set14").exists()


@pytest.mark.parametrize("kind", ["file", "folder", "from", "root-file", "root-folder"])
def test_a_link_is_never_installed(tmp_path, capsys, kind):
    copy = tmp_path / "copy"
    for i in range(2):
        _png(copy / "images" / f"img{i}.png", seed=i)
    m = _manifest(tmp_path / "m.sha256", {"Set5": copy / "images"})
    root = tmp_path / "data"
    if kind == "file":  # a link to an image in the same folder, under a name the manifest lists
        (copy / "Set5").mkdir()
        (copy / "Set5" / "img0.png").write_bytes((copy / "images" / "img0.png").read_bytes())
        (copy / "Set5" / "img1.png").symlink_to(copy / "images" / "img1.png")
        src, link = copy, copy / "Set5" / "img1.png"
    elif kind == "folder":  # the set folder is a link to a folder of good images
        (copy / "Set5").symlink_to(copy / "images", target_is_directory=True)
        src, link = copy, copy / "Set5"
    elif kind == "from":  # --from names the set folder through a link
        (tmp_path / "Set5").symlink_to(copy / "images", target_is_directory=True)
        src, link = tmp_path / "Set5", tmp_path / "Set5"
    else:  # a set in the root holding a link is not "already present"
        (root / "Set5").mkdir(parents=True)
        (root / "Set5" / "img0.png").write_bytes((copy / "images" / "img0.png").read_bytes())
        if kind == "root-file":
            (root / "Set5" / "img1.png").symlink_to(copy / "images" / "img1.png")
            link = root / "Set5" / "img1.png"
        else:
            (root / "Set5").rename(tmp_path / "elsewhere")
            (root / "Set5").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
            link = root / "Set5"
        line = _refused(capsys, "Set5", "--from", copy, "--root", root, "--manifest", m,
                        contains=(str(link), "symbolic link", "copy the real file in"))
        assert "already present" not in line
        return
    _refused(capsys, "Set5", "--from", src, "--root", root, "--manifest", m, contains=(str(link), "symbolic link"))
    _nothing_written(tmp_path, root)


def test_the_link_check_of_a_plan_itself(tmp_path):
    """hinas.data.importing.plan refuses a link among the set's files even when called directly."""
    from hinas.data import importing
    from hinas.errors import DataError

    _png(tmp_path / "copy" / "Set5" / "a.png")
    (tmp_path / "copy" / "Set5" / "b.png").symlink_to(tmp_path / "copy" / "Set5" / "a.png")
    with pytest.raises(DataError, match="b.png: a symbolic link"):
        importing.plan(tmp_path / "copy", "Set5", download.SOURCES["Set5"], tmp_path / "data", "copy",
                       download.q, 1 << 20)


def test_a_manifest_that_does_not_list_the_set_falls_back_to_its_count(tmp_path, capsys):
    from hinas.cli import main

    for i in range(5):
        _png(tmp_path / "copy" / "Set5" / f"img{i}.png", seed=i)
    other = _manifest(tmp_path / "m.sha256", {"Set14": tmp_path / "copy" / "Set5"})  # lists Set14 only
    root = tmp_path / "data"
    assert main(["data", "download", "Set5", "--from", str(tmp_path / "copy"), "--root", str(root),
                 "--manifest", str(other)]) == 0
    assert "Set5: installed (5 images, the set's count;" in capsys.readouterr().out
    (root / "Set5" / "img4.png").unlink()
    _refused(capsys, "Set5", "--root", root, "--manifest", other, contains=("4 images for Set5/", "has 5"))


@pytest.mark.parametrize("bad", ["missing", "binary", "garbled", "twice"])
def test_an_unusable_manifest_is_one_line(tmp_path, capsys, bad):
    _png(tmp_path / "copy" / "Set5" / "a.png")
    m = tmp_path / "m.sha256"
    if bad == "binary":
        m.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff" * 20)
    elif bad == "garbled":
        m.write_text("not a checksum line\n")
    elif bad == "twice":
        m.write_text(f"{'0' * 64}  Set5/a.png\n{'1' * 64}  ./Set5/a.png\n")
    root = tmp_path / "data"
    args = ["Set5", "--from", tmp_path / "copy", "--root", root]
    if bad == "missing":  # the flag checks its path before the command runs
        _refused(capsys, *args, "--manifest", m, contains=("--manifest", "no such"))
        p = run(*args, "--manifest", m)
        assert p.returncode == 2 and "no such checksum list" in p.stderr
    else:
        _refused(capsys, *args, "--manifest", m, contains=("m.sha256", {"binary": "not a text checksum list",
                                                                       "garbled": "line 1",
                                                                       "twice": "line 2"}[bad]))
    _nothing_written(tmp_path, root)


def test_the_default_manifest_unreadable_or_garbled_is_one_line(tmp_path, monkeypatch, capsys):
    _png(tmp_path / "copy" / "Set5" / "a.png")
    bad = tmp_path / "reference_files.sha256"
    bad.write_text("garbled\n")
    monkeypatch.setattr(download, "REFERENCE", bad)
    assert download.main(["Set5", "--from", str(tmp_path / "copy"), "--root", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "line 1 is not 'SHA256  PATH'; restore the file from the repository" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "data").exists()
