"""data_scripts/download.py, offline: local folders and archives, hostile archives, resume."""

import functools
import http.server
import io
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


def test_import_from_folder_and_idempotent(tmp_path):
    src = _fake_set5(tmp_path / "copy")
    root = tmp_path / "data"
    p = run("Set5", "--from", src, "--root", root)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in (root / "Set5").iterdir()) == ["img0.png", "img1.png"]
    again = run("Set5", "--from", src, "--root", root)
    assert again.returncode == 0 and "already present" in again.stdout


def test_import_from_tar_archive(tmp_path):
    src = _fake_set5(tmp_path / "copy")
    archive = tmp_path / "set5.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src / "Set5", arcname="Set5_HR")
    root = tmp_path / "data"
    p = run("Set5", "--from", archive, "--root", root)
    assert p.returncode == 0, p.stderr
    assert len(list((root / "Set5").glob("*.png"))) == 2


def test_div2k_import_lands_where_the_loader_looks(tmp_path):
    """DIV2K's archive (DIV2K_train_HR/*.png) imported, then found as DIV2K-train for SR training."""
    from hinas.data.datasets import list_datasets, load_dataset

    archive = tmp_path / "DIV2K_train_HR.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(2):
            buf = io.BytesIO()
            Image.fromarray((np.random.default_rng(i).random((24, 24, 3)) * 255).astype("uint8")).save(buf, "PNG")
            zf.writestr(f"DIV2K_train_HR/{i + 1:04d}.png", buf.getvalue())
    root = tmp_path / "data"
    p = run("DIV2K", "--from", archive, "--root", root)
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
