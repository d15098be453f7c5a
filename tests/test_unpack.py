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


# -- one transaction (issue 34, principle 2): everything read and checked, then staged and moved

def test_a_sealed_item_at_any_depth_is_never_overwritten(tmp_path):
    dest = tmp_path / "repo"
    _sealed(dest / "group" / "eval-dn50-s0")
    before = _files(dest)
    for member in ("group/eval-dn50-s0/scores.txt", "group/eval-dn50-s0/new.txt", "group/eval-dn50-s0/deep/x"):
        path = _tgz(tmp_path / "a.tgz", _file("other/ok.txt"), _file(member, b"a better score"))
        with pytest.raises(HinasError, match="sealed here"):
            unpack_archives([path], dest)
        assert _files(dest) == before


@pytest.mark.parametrize("members, needle", [
    ([_file("aa-item/x"), _file("zz-item"), _file("zz-item/summary.json")], "both a file and a folder"),
    ([_file("aa-item/x"), _file("zz-item/" + "n" * 300)], "longer than"),
])
def test_an_archive_that_cannot_be_written_whole_writes_nothing(tmp_path, members, needle):
    dest = tmp_path / "repo"
    dest.mkdir()
    with pytest.raises(HinasError, match=needle):
        unpack_archives([_tgz(tmp_path / "a.tgz", *members)], dest)
    assert list(dest.iterdir()) == []


def test_a_failure_while_moving_puts_everything_back(tmp_path, monkeypatch):
    dest = tmp_path / "repo"
    (dest / "train-long" / "run").mkdir(parents=True)
    (dest / "train-long" / "run" / "checkpoint.pt").write_bytes(b"piece 3")
    before = _files(dest)
    path = _tgz(tmp_path / "a.tgz", _file("train-long/run/checkpoint.pt", b"piece 4"),
                _file("zz-new/run/progress.json", b"{}"))
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the second file: the disk fills
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(archive.os, "replace", failing_replace)
    with pytest.raises(HinasError, match="No space left"):
        unpack_archives([path], dest)
    monkeypatch.setattr(archive.os, "replace", real_replace)
    assert _files(dest) == before and sorted(p.name for p in dest.iterdir()) == ["train-long"]


def test_a_planted_link_at_a_temp_name_is_never_followed(tmp_path):
    from hinas.safeio import atomic_write_text, write_bytes_durably

    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    dest = tmp_path / "repo" / "item"
    dest.mkdir(parents=True)
    (dest / "progress.json.tmp").symlink_to(outside)
    unpack_archives([_tgz(tmp_path / "a.tgz", _file("item/progress.json", b"{}"))], tmp_path / "repo")
    (dest / "summary.json.tmp").symlink_to(outside)
    atomic_write_text(dest / "summary.json", "{}")
    (dest / "weights.pt.tmp").symlink_to(outside)
    write_bytes_durably(dest / "weights.pt", b"w")
    assert outside.read_text() == "keep me"
    assert (dest / "progress.json").read_bytes() == b"{}" and (dest / "weights.pt").read_bytes() == b"w"


def test_the_gzip_crc_and_length_are_checked(tmp_path):
    import gzip

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info, data = _file("eval-a/scores.txt", b"".join(os.urandom(64) for _ in range(64)))  # stored blocks
        tar.addfile(info, io.BytesIO(data))
    good = gzip.compress(raw.getvalue())
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    for name, blob in (("flipped.tgz", bytes(flipped)), ("cut.tgz", good[:-20]), ("cut4.tgz", good[:-4])):
        (tmp_path / name).write_bytes(blob)
        dest = tmp_path / name.replace(".tgz", "")
        with pytest.raises(HinasError, match="not a readable tar.gz"):
            unpack_archives([tmp_path / name], dest)
        assert not dest.exists() or _files(dest) == {}


def test_parts_of_one_window_are_one_set(window, tmp_path):
    _, tgz = window
    parts = sorted(tgz.parent.glob("results.tgz.*"), key=lambda p: int(p.suffix[1:]))
    dest = tmp_path / "repo"
    tgz.write_bytes(b"a stale window's archive")  # a whole archive beside the parts
    with pytest.raises(HinasError, match="stale"):
        unpack_archives([tgz], dest)
    tgz.unlink()
    stale = parts[-1].with_name(f"results.tgz.{len(parts) + 1}")
    stale.write_bytes(parts[0].read_bytes())  # an older, longer window's next part
    with pytest.raises(HinasError, match="parts of two windows"):
        unpack_archives([tgz], dest)
    stale.rename(parts[-1].with_name(f"results.tgz.{len(parts) + 2}"))  # a gap before it
    with pytest.raises(HinasError, match="missing"):
        unpack_archives([tgz], dest)
    assert not dest.exists() or _files(dest) == {}


def test_the_size_cap_is_checked_while_decompressing(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_UNPACKED_BYTES", 2**20)
    monkeypatch.setattr(archive, "_READ_BYTES", 2**16)
    zeros = 5 * 2**20
    path = _tgz(tmp_path / "zeros.tgz", _file("item/zeros.bin", bytes(zeros)))
    seen = []
    real_read = archive.gzip.GzipFile.read

    def counting_read(self, size=-1):
        out = real_read(self, size)
        seen.append(len(out))
        return out

    monkeypatch.setattr(archive.gzip.GzipFile, "read", counting_read)
    with pytest.raises(HinasError, match="more than"):
        unpack_archives([path], tmp_path / "repo")
    assert sum(seen) < zeros  # stopped before the whole was in memory
