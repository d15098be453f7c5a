"""``hinas data check`` fails when data are missing and says how to get them; ``hinas data
download`` is data_scripts/download.py behind the CLI."""

import json

import numpy as np
from PIL import Image

from hinas.cli import main


def test_check_without_data_fails_and_names_the_way_to_get_it(monkeypatch, capsys):
    monkeypatch.delenv("HINAS_DATA", raising=False)
    assert main(["data", "check", "--no-decode"]) == 1
    out = capsys.readouterr().out
    assert "hinas data download BSDS500" in out and "data_scripts/download.py" in out and "--from" in out
    assert main(["data", "check", "--no-decode", "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    assert res["ok"] is False and {m["dataset"] for m in res["missing"]} >= {"BSDS500-test", "Set5", "Urban100"}


def test_check_unknown_dataset_is_bad_input(capsys):
    assert main(["data", "check", "--no-decode", "--dataset", "NoSuchSet"]) == 2
    assert "NoSuchSet" in capsys.readouterr().err


def test_check_real_data_passes_unless_an_asked_dataset_is_missing(real_data_root, capsys):
    assert main(["data", "check", "--no-decode", "--data-root", str(real_data_root)]) == 0
    capsys.readouterr()
    if (real_data_root / "Manga109").is_dir():
        return
    assert main(["data", "check", "--no-decode", "--data-root", str(real_data_root), "--dataset", "manga109"]) == 1
    assert "manga109.org" in capsys.readouterr().out


def test_download_command_imports_a_local_copy(tmp_path, capsys):
    src = tmp_path / "copy" / "Set5"
    src.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(src / f"img{i}.png")
    root = tmp_path / "data"
    # two made-up images are not the Set5 that data_scripts/reference_files.sha256 lists: refused
    assert main(["data", "download", "Set5", "--from", str(tmp_path / "copy"), "--root", str(root)]) == 2
    assert "Set5/baby.png is missing" in capsys.readouterr().err and not root.exists()
    # --manifest passes through: checked against the researcher's own list
    import hashlib

    manifest = tmp_path / "own.sha256"
    manifest.write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  Set5/{p.name}\n"
                                for p in sorted(src.iterdir())))
    assert main(["data", "download", "Set5", "--from", str(tmp_path / "copy"), "--root", str(root),
                 "--manifest", str(manifest)]) == 0
    assert sorted(p.name for p in (root / "Set5").iterdir()) == ["img0.png", "img1.png"]
    assert "Set5: installed (2 files match the checksums in" in capsys.readouterr().out
    assert main(["data", "download", "--list"]) == 0
    assert "BSDS500" in capsys.readouterr().out
    assert main(["data", "download", "NoSuchSet", "--root", str(root)]) == 2


def _tiny_root(root):
    d = root / "Set5"
    d.mkdir(parents=True)
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(d / "a.png")
    return root


def _one_line_exit_2(capsys, args, *contains):
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("hinas: error: ") and "Traceback" not in err, err
    for c in contains:
        assert c in lines[0], (c, lines[0])


def test_binary_or_garbled_manifest_is_one_line(tmp_path, capsys):
    import hashlib

    root = _tiny_root(tmp_path / "data")
    manifest = root / "MANIFEST.sha256"
    args = ["data", "check", "--no-decode", "--checksums", "--data-root", str(root)]
    manifest.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 50)
    _one_line_exit_2(capsys, args, "MANIFEST.sha256", "binary")
    manifest.write_bytes("caf\xe9  Set5/a.png\n".encode("latin-1"))
    _one_line_exit_2(capsys, args, "MANIFEST.sha256", "UTF-8")
    manifest.write_text("not a checksum line\n")
    _one_line_exit_2(capsys, args, "MANIFEST.sha256", "line 1")
    # a good one passes the checksum part; a changed file is a difference (exit 1), not bad input
    digest = hashlib.sha256((root / "Set5" / "a.png").read_bytes()).hexdigest()
    manifest.write_text(f"{digest}  ./Set5/a.png\n")
    assert main(args + ["--json"]) == 1  # the standard sets are missing
    res = json.loads(capsys.readouterr().out)
    assert res["checksums"]["checked"] == 1 and not any("checksum" in p for p in res["problems"])
    manifest.write_text(f"{'0' * 64}  ./Set5/a.png\n")
    assert main(args + ["--json"]) == 1
    assert any("checksum mismatch" in p for p in json.loads(capsys.readouterr().out)["problems"])
