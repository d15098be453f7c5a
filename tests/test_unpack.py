"""``hinas campaign unpack``: a GPU window's archive back into the results folder, all or nothing,
never over a sealed item's files, never through a link or out of the folder."""

import io
import json
import os
import subprocess
import sys
import tarfile
import time

import pytest

from hinas.campaign import archive
from hinas.campaign.archive import unpack_archives, write_archive
from hinas.campaign.folders import DONE, write_json
from hinas.campaign.manifest import check_item, write_manifest
from hinas.errors import HinasError


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _sealed(folder, text="a result"):
    folder.mkdir(parents=True)
    (folder / "scores.txt").write_text(text)
    write_json(folder / "summary.json", {"kind": "eval", "files": ["scores.txt"]})
    write_manifest(folder, folder.name)
    write_json(folder / DONE, {"finished": "now"})
    assert check_item(folder)["state"] == "done"


@pytest.fixture()
def window(tmp_path, monkeypatch):
    """A window's results folder (a sealed item, a long item's checkpoint) packed in three parts."""
    monkeypatch.setattr(archive, "ARCHIVE_PART_BYTES", 200)
    src = tmp_path / "gpu"
    since = time.time() - 1
    _sealed(src / "eval-a")
    (src / "train-long" / "run").mkdir(parents=True)
    (src / "train-long" / "run" / "checkpoint.pt").write_bytes(os.urandom(400))  # incompressible
    parts = write_archive(src, since, tmp_path / "out" / "results.tgz")
    assert len(parts) >= 2 and parts[0].endswith("results.tgz.1")
    return src, tmp_path / "out" / "results.tgz"


def test_a_window_unpacks_whole_from_its_parts(window, tmp_path):
    src, tgz = window
    dest = tmp_path / "repo"
    report = unpack_archives([tgz], dest)
    assert _files(dest) == _files(src) and report["items"] == {"eval-a": 4, "train-long": 1}
    assert check_item(dest / "eval-a")["state"] == "done"
    # again: the sealed files are the same bytes, the checkpoint is replaced by the newer piece
    (src / "train-long" / "run" / "checkpoint.pt").write_bytes(b"next piece")
    again = write_archive(src, 0, tmp_path / "out2" / "results.tgz")
    unpack_archives([again[0].removesuffix(".1") if again[0].endswith(".1") else again[0]], dest)
    assert (dest / "train-long" / "run" / "checkpoint.pt").read_bytes() == b"next piece"


def test_a_sealed_result_is_never_overwritten(window, tmp_path):
    _, tgz = window
    dest = tmp_path / "repo"
    _sealed(dest / "eval-a", text="another result")
    before = _files(dest)
    with pytest.raises(HinasError, match="sealed here"):
        unpack_archives([tgz], dest)
    assert _files(dest) == before  # not even the checkpoint was written


def _tgz(path, *members):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


@pytest.mark.parametrize("bad, needle", [
    (_file("../escape.txt"), "climbs out"),
    (_file("/etc/passwd-copy"), "climbs out"),
    (_link("item/link", "/etc/passwd"), "not a regular file"),
])
def test_members_that_leave_the_folder_or_are_links_are_refused(tmp_path, bad, needle):
    path = _tgz(tmp_path / "evil.tgz", _file("item/ok.txt"), bad)
    dest = tmp_path / "repo"
    dest.mkdir()
    with pytest.raises(HinasError, match=needle):
        unpack_archives([path], dest)
    assert _files(dest) == {} and not (tmp_path / "escape.txt").exists()


def test_nothing_is_written_through_a_link_in_the_results_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "repo"
    dest.mkdir()
    (dest / "item").symlink_to(outside)
    with pytest.raises(HinasError, match="a link or a file where the archive has a folder"):
        unpack_archives([_tgz(tmp_path / "a.tgz", _file("item/x.txt"))], dest)
    assert list(outside.iterdir()) == []


def test_missing_or_truncated_archives_are_refused_in_one_line(window, tmp_path):
    _, tgz = window
    last = sorted(tgz.parent.glob("results.tgz.*"))[-1]
    last.unlink()  # a part left behind
    dest = tmp_path / "repo"
    with pytest.raises(HinasError, match="not a readable tar.gz"):
        unpack_archives([tgz], dest)
    assert not dest.exists() or _files(dest) == {}
    out = subprocess.run([sys.executable, "-m", "hinas", "campaign", "unpack", str(tmp_path / "none.tgz"),
                          "--results", str(dest)], capture_output=True, text=True)
    assert out.returncode == 2 and "no such archive" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not dest.exists()


def test_the_command_line_unpacks_and_names_the_items(window, tmp_path):
    _, tgz = window
    dest = tmp_path / "repo"
    out = subprocess.run([sys.executable, "-m", "hinas", "campaign", "unpack", str(tgz), "--results", str(dest),
                          "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["items"] == {"eval-a": 4, "train-long": 1}
