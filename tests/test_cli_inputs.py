"""Hostile inputs on the command line (principles 3, 4 and 6): one rule for every path and name
(:class:`hinas.cli.PathArg`, :func:`hinas.safeio.check_path`), settings that make a run meaningless
refused before the run, and every refusal, argparse's included, one line on stderr with exit code 2,
no traceback, nothing written.

Each command runs as ``python -m hinas ...`` sees it: the many refusals are run by one child process
(one torch import) that calls the entry points in turn and keeps each one's exit code and stderr
apart; a few run as their own ``python -m`` process, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Run in a child process: each case's exit code and stderr, as the command line gives them.
DRIVER = r"""
import contextlib, io, json, sys, traceback
from hinas.cli import main as hinas_main
from hinas.book.__main__ import main as book_main

results = []
for entry, argv in json.load(sys.stdin):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = (hinas_main if entry == "hinas" else book_main)(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            rc = 1
    results.append({"rc": rc, "err": err.getvalue(), "out": out.getvalue()})
print(json.dumps(results))
"""


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")


def _run_cases(cases, cwd) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(cases), capture_output=True, text=True,
                          env=_env(), cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size if p.is_file() else None)
            for p in sorted(root.rglob("*")) if not p.is_fifo()}


def assert_one_line(rc, err, contains=(), prefix=None):
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0], err
    if prefix is not None:
        assert lines[0].startswith(prefix), lines[0]
    for c in contains:
        assert c.lower() in lines[0].lower(), (c, lines[0])


@pytest.fixture()
def place(tmp_path):
    """A folder with one of each kind of thing a path can name (and nothing else)."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "genotype.json").write_text("{}")
    weights = tmp_path / "weights"  # a run folder whose network.json holds 1e999 in a field
    weights.mkdir()
    spec = {"model": "dncnn", "task": "denoise", "in_channels": 1, "scale": None, "bn_init": "torch1"}
    (weights / "network.json").write_text(json.dumps(spec)[:-1] + ', "layers": 1e999}')
    (weights / "weights.safetensors").write_bytes(b"not read")
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "network.json").write_text(json.dumps(dict(spec, layers=3)))
    (edited / "weights.safetensors").write_bytes(b"not read")
    (tmp_path / "big.yaml").write_text("# padding\n" * 120_000)  # > 1 MiB
    (tmp_path / "never.yaml").write_text("profile: smoke\nepochs: 10\narch_start_epoch: 10\n")
    (tmp_path / "plan.yaml").write_text("defaults: {profile: smoke, device: cpu}\n"
                                        "items: [{name: s, kind: search, config: {epochs: 3, val_start_epoch: 5}}]\n")
    return tmp_path


S = ["--profile", "smoke", "--quiet"]

# (entry, argv, words the one line must hold); paths are relative to the ``place`` folder
PATH_CASES = [
    # empty strings are never "here" or "all of them"
    ("hinas", ["campaign", "status", "--plan", "smoke", "--results", ""], ["--results", "empty"]),
    ("hinas", ["campaign", "run", "--plan", "smoke", "--budget", "5", "--results", ""], ["--results", "empty"]),
    ("hinas", ["campaign", "status", "--plan", "", "--results", "r"], ["--plan", "empty"]),
    ("hinas", ["campaign", "run", "--plan", "smoke", "--budget", "5", "--results", "r", "--only", ""], ["--only"]),
    ("hinas", ["campaign", "seal", "--results", ""], ["--results"]),
    ("hinas", ["campaign", "unpack", "", "--results", "r"], ["FILE.tgz", "empty"]),
    ("hinas", ["verify", ""], ["DIR", "empty"]),
    ("hinas", ["search", *S, "--out", ""], ["--out", "empty"]),
    ("hinas", ["search", *S, "--out", "r", "--data-root", ""], ["--data-root"]),
    ("hinas", ["search", "--config", "", "--out", "r"], ["--config"]),
    ("hinas", ["train", *S, "--genotype", "", "--out", "r"], ["--genotype"]),
    ("hinas", ["eval", "--weights", "", "--sigma", "50"], ["--weights"]),
    ("hinas", ["eval", "noisy", "--sigma", "50", "--dataset", ""], ["--dataset"]),
    ("hinas", ["eval", "noisy", "--sigma", "50", "--save", ""], ["--save"]),
    ("hinas", ["protocol-ladder", "noisy", "--sigma", "50", "--out", ""], ["--out"]),
    ("hinas", ["restore", "", "--weights", "folder", "--out", "r"], ["INPUT"]),
    ("hinas", ["restore", "file", "--weights", "folder", "--out", ""], ["--out"]),
    ("hinas", ["export", "--weights", "folder", "--out", ""], ["--out"]),
    ("hinas", ["describe", ""], ["GENOTYPE"]),
    ("hinas", ["draw", "genotype.json", "--out", ""], ["--out"]),
    ("hinas", ["config", "show", "--config", ""], ["--config"]),
    ("hinas", ["data", "check", "--dataset", ""], ["--dataset"]),
    ("hinas", ["data", "check", "--data-root", ""], ["--data-root"]),
    ("hinas", ["data", "download", ""], ["NAME"]),
    ("hinas", ["data", "download", "Set5", "--root", ""], ["--root"]),
    ("book", ["execute", "--results", "r", "--only", ""], ["--only", "empty"]),
    ("book", ["execute", "--results", "r", "--only", "01,,02"], ["--only"]),
    ("book", ["execute", "--results", ""], ["--results"]),
    ("book", ["build", "--only", ""], ["--only"]),
    # a pipe or a device is never read (a FIFO would hang, /dev/zero fill the memory)
    ("hinas", ["campaign", "status", "--plan", "./fifo", "--results", "r"], ["fifo", "pipe"]),
    ("hinas", ["campaign", "status", "--plan", "/dev/zero", "--results", "r"], ["/dev/zero", "device"]),
    ("hinas", ["search", "--config", "fifo", "--out", "r"], ["--config", "pipe"]),
    ("hinas", ["config", "show", "--config", "/dev/zero"], ["--config", "device"]),
    ("hinas", ["train", *S, "--genotype", "fifo", "--out", "r"], ["--genotype", "pipe"]),
    ("hinas", ["describe", "/dev/zero"], ["device"]),
    ("hinas", ["restore", "fifo", "--weights", "folder", "--out", "r"], ["INPUT", "pipe"]),
    ("hinas", ["campaign", "unpack", "fifo", "--results", "r"], ["pipe"]),
    ("hinas", ["eval", "noisy", "--sigma", "50", "--save", "fifo"], ["--save", "pipe"]),
    ("hinas", ["search", *S, "--out", "r", "--data-root", "fifo"], ["--data-root", "pipe"]),
    ("book", ["execute", "--results", "r", "--data-root", "fifo"], ["--data-root", "pipe"]),
    ("book", ["execute", "--results", "r", "--runs-root", "fifo"], ["--runs-root", "pipe"]),
    # a file where a folder is wanted, a folder where a file is, a file on the way, a dangling link
    ("hinas", ["campaign", "run", "--plan", "smoke", "--budget", "5", "--results", "file"], ["--results", "is a file"]),
    ("hinas", ["campaign", "run", "--plan", "smoke", "--budget", "5", "--results", "r", "--archive", "folder"],
     ["--archive", "is a folder"]),
    ("hinas", ["campaign", "seal", "--results", "missing"], ["--results", "no such folder"]),
    ("hinas", ["verify", "file"], ["is a file"]),
    ("hinas", ["search", *S, "--out", "file"], ["--out", "is a file"]),
    ("hinas", ["search", *S, "--out", "file/sub"], ["--out", "is a file"]),
    ("hinas", ["search", *S, "--out", "dangling"], ["--out", "link"]),
    ("hinas", ["search", "--config", "folder", "--out", "r"], ["--config", "is a folder"]),
    ("hinas", ["search", *S, "--out", "r", "--data-root", "file"], ["--data-root", "is a file"]),
    ("hinas", ["eval", "--weights", "file", "--sigma", "50"], ["--weights", "is a file"]),
    ("hinas", ["eval", "noisy", "--sigma", "50", "--save", "folder"], ["--save", "is a folder"]),
    ("hinas", ["export", "--weights", "folder", "--out", "folder"], ["--out", "is a folder"]),
    ("hinas", ["draw", "genotype.json", "--out", "file"], ["--out", "is a file"]),
    ("hinas", ["data", "download", "Set5", "--root", "file"], ["--root", "is a file"]),
    ("hinas", ["data", "download", "Set5", "--from", "missing"], ["--from", "no such"]),
    ("book", ["execute", "--results", "r", "--runs-root", "file"], ["--runs-root", "is a file"]),
    ("book", ["build", "--runs-root", "file"], ["--runs-root", "is a file"]),
    ("book", ["execute", "--results", "file"], ["--results", "is a file"]),
    # plan and config files are read within a size cap
    ("hinas", ["campaign", "status", "--plan", "big.yaml", "--results", "r"], ["big.yaml", "too large"]),
    ("hinas", ["search", "--config", "big.yaml", "--out", "r"], ["big.yaml", "too large"]),
    # a network description: no number beyond float's range, no field hinas does not write
    ("hinas", ["eval", "--weights", "weights", "--sigma", "50"], ["network.json", "1e999"]),
    ("hinas", ["eval", "--weights", "edited", "--sigma", "50"], ["network.json", "layers"]),
    # out of the exporter's opset range: one line, not its graph
    ("hinas", ["export", "--weights", "folder", "--out", "x.onnx", "--opset", "999"], ["--opset", "999"]),
    ("hinas", ["export", "--weights", "folder", "--out", "x.onnx", "--opset", "-1"], ["--opset"]),
]

SETTING_CASES = [
    ("hinas", ["search", *S, "--out", "r", "--set", "arch_start_epoch=100"], ["arch_start_epoch=100", "epochs=4"]),
    ("hinas", ["search", *S, "--out", "r", "--set", "arch_start_epoch=4"], ["arch_start_epoch=4", "epochs=4"]),
    ("hinas", ["search", *S, "--out", "r", "--set", "val_start_epoch=9"], ["val_start_epoch=9", "epochs=4"]),
    ("hinas", ["search", *S, "--out", "r", "--set", "epochs=2", "--set", "arch_start_epoch=3"],
     ["arch_start_epoch=3", "epochs=2"]),
    ("hinas", ["search", "--config", "never.yaml", "--out", "r"], ["never.yaml", "arch_start_epoch=10", "epochs=10"]),
    ("hinas", ["config", "show", "--profile", "quick", "--set", "val_start_epoch=12"], ["val_start_epoch", "epochs=12"]),
    ("hinas", ["search", "--profile", "quick", "--out", "r", "--set", "epochs=3"],
     ["arch_start_epoch=4 (the profile's)", "epochs=3"]),
    ("hinas", ["campaign", "status", "--plan", "plan.yaml", "--results", "r"], ["val_start_epoch=5", "epochs=3"]),
    ("hinas", ["search", *S, "--out", "r", "--sigma", "0"], ["search_sigma", "no noise"]),
    ("hinas", ["train", *S, "--model", "dncnn", "--sigma", "0", "0", "--out", "r"], ["sigma", "no noise"]),
    ("hinas", ["search", *S, "--out", "r", "--set", "data_root=''"], ["data_root", "empty"]),
]

USAGE_CASES = [  # argparse's own errors: one line naming the command and where to look
    ("hinas", [], ["hinas: error:", "hinas --help"]),
    ("hinas", ["search"], ["hinas search: error:", "--out", "hinas search --help"]),
    ("hinas", ["search", "--bogus", "--out", "r"], ["hinas: error:", "unrecognized", "--bogus"]),
    ("hinas", ["campaign"], ["hinas campaign: error:"]),
    ("hinas", ["campaign", "run", "--plan", "smoke"], ["hinas campaign run: error:", "--budget"]),
    ("hinas", ["campaign", "run", "--plan", "smoke", "--results", "r", "--budget", "x"], ["--budget"]),
    ("hinas", ["config"], ["hinas config: error:"]),
    ("hinas", ["data"], ["hinas data: error:"]),
    ("hinas", ["bench"], ["hinas bench: error:"]),
    ("hinas", ["eval", "--limit", "x"], ["hinas eval: error:", "--limit"]),
    ("hinas", ["nonsense"], ["hinas: error:", "nonsense"]),
    ("book", [], ["python -m hinas.book: error:"]),
    ("book", ["execute", "--bogus"], ["python -m hinas.book execute: error:"]),
    ("book", ["execute", "--results", "r", "--jobs", "0"], ["--jobs"]),
]


def test_every_refusal_is_one_line_exit_2_and_writes_nothing(place):
    cases = PATH_CASES + SETTING_CASES + USAGE_CASES
    before = _snapshot(place)
    results = _run_cases([(entry, argv) for entry, argv, _ in cases], place)
    for n, ((entry, argv, words), res) in enumerate(zip(cases, results)):
        # the project's own refusals name the program alone; argparse's name the command
        prefix = None if n >= len(PATH_CASES + SETTING_CASES) else \
            "hinas: error: " if entry == "hinas" else "python -m hinas.book: error: "
        try:
            assert_one_line(res["rc"], res["err"], words, prefix)
        except AssertionError as exc:
            raise AssertionError(f"{entry} {argv}: {exc}") from None
        assert not res["out"], (argv, res["out"])
    assert _snapshot(place) == before  # no run folder, results folder, archive or output appeared
    assert not (place / "r").exists()


@pytest.mark.parametrize("entry,argv,words", [
    ("hinas", ["verify", ""], ["hinas: error: DIR '': an empty path"]),
    ("hinas", ["search", "--profile", "smoke", "--out", "r", "--set", "arch_start_epoch=100"],
     ["arch_start_epoch=100", "never train the architecture"]),
    ("hinas.book", ["execute", "--results", "r", "--only", ""], ["python -m hinas.book: error: --only ''"]),
])
def test_end_to_end_as_a_user_runs_it(tmp_path, entry, argv, words):
    proc = subprocess.run([sys.executable, "-m", entry, *argv], capture_output=True, text=True, env=_env(),
                          cwd=tmp_path, timeout=300)
    assert_one_line(proc.returncode, proc.stderr, words)
    assert list(tmp_path.iterdir()) == []


def test_every_path_and_name_argument_goes_through_the_one_rule():
    """Every argument that names a file, a folder or a list of names, in every command (but the
    benchmarks' ``hinas bench``), is a PathArg: the rule cannot be forgotten on a new one."""
    import argparse

    from hinas.cli import PathArg, build_parser

    pathish = {"out", "results", "data_root", "weights", "genotype", "config", "save", "archive", "archives", "root",
               "local", "inputs", "plan", "dataset", "datasets", "only", "items", "runs_root"}
    missing = []

    def walk(parser, where):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if name != "bench":
                        walk(sub, f"{where} {name}")
            elif action.dest in pathish and not isinstance(action, PathArg):
                missing.append(f"{where} {action.option_strings or action.dest}")

    walk(build_parser(), "hinas")
    assert not missing, missing


def test_the_path_rule(tmp_path):
    from hinas.errors import HinasError
    from hinas.safeio import check_path

    (tmp_path / "f").write_text("x")
    os.mkfifo(tmp_path / "p")
    (tmp_path / "d").mkdir()
    ok = [("f", "file", True), ("d", "folder", True), ("f", "any", True), ("d", "any", True),
          ("new", "folder", False), ("new.json", "file", False), ("d/new", "any", False), ("f", "file", False)]
    for name, want, exists in ok:
        assert check_path(tmp_path / name, want, missing_ok=not exists) == str(tmp_path / name)
    bad = [("", "folder", False, "empty"), ("p", "file", True, "pipe"), ("p", "any", False, "pipe"),
           ("/dev/null", "file", False, "device"), ("f", "folder", False, "is a file"),
           ("d", "file", True, "is a folder"), ("f/x", "any", False, "is a file"), ("missing", "file", True, "no such"),
           ("d/", "file", False, "is a folder"), ("new/", "file", False, "ends in '/'")]
    for name, want, exists, word in bad:
        value = name if not name or name.startswith("/") else f"{tmp_path}/{name}"
        with pytest.raises(HinasError, match=f"^--x .*{word}"):
            check_path(value, want, missing_ok=not exists, flag="--x")


def test_meaningless_starts_are_refused_when_set_and_every_shipped_setting_loads():
    from hinas.campaign import list_plans, load_plan
    from hinas.campaign.options import item_config
    from hinas.engine.config import PROFILES, RunConfig
    from hinas.errors import ConfigError

    for profile in PROFILES:
        for task, scale in (("denoise", None), ("sr", 2), ("sr", 3), ("sr", 4)):
            RunConfig.from_profile(profile, task, scale)
    for path in sorted((REPO / "hinas" / "configs").glob("*.yaml")):
        RunConfig.from_yaml(path)
    from hinas.campaign.plan import profiles_of

    for name in list_plans():
        for profile in profiles_of(name):  # a plan with profiles, at each of them
            for item in load_plan(name, profile).items:
                if item.kind in ("search", "train"):
                    item_config(item, None, None)
    # the smoke profile searches and validates from the first epoch, so a one-epoch smoke search is whole
    assert RunConfig.from_profile("smoke", "denoise", epochs=1).epochs == 1
    assert RunConfig.from_profile("smoke", "denoise").with_overrides(["epochs=1"]).arch_start_epoch == 0
    # a run shortened below its profile's own starts never searches: refused, naming both settings
    with pytest.raises(ConfigError, match=r"arch_start_epoch=20 \(the profile's\) with epochs=4"):
        RunConfig.from_profile("paper", "denoise").with_overrides(["epochs=4"])
    with pytest.raises(ConfigError, match=r"val_start_epoch=6 \(the profile's\) with epochs=5"):
        RunConfig.from_profile("quick", "denoise", epochs=5)
    # a start that is set and never reached is
    with pytest.raises(ConfigError, match="arch_start_epoch=4 with epochs=4"):
        RunConfig.from_profile("smoke", "denoise", arch_start_epoch=4)
    with pytest.raises(ConfigError, match="val_start_epoch=7 with epochs=4"):
        RunConfig.from_profile("smoke", "denoise").with_overrides(["val_start_epoch=7"])
    with pytest.raises(ConfigError, match="arch_start_epoch"):
        RunConfig.from_profile("quick", "denoise").replace(epochs=3, arch_start_epoch=3)
    with pytest.raises(ConfigError, match="no noise"):
        RunConfig.from_profile("smoke", "denoise", sigma=[0, 0])


def test_the_library_applies_the_same_rule_to_a_campaign_call(tmp_path):
    from hinas.campaign import load_plan, run_campaign
    from hinas.errors import ConfigError

    (tmp_path / "file").write_text("x")
    plan = load_plan("smoke")
    for results, data_root, word in ((tmp_path / "file", None, "--results .*is a file"),
                                     (tmp_path / "r", "", "--data-root ''"),
                                     (tmp_path / "r", tmp_path / "file", "--data-root .*is a file")):
        with pytest.raises(ConfigError, match=word):
            run_campaign(plan, results, 5, data_root=data_root, log=lambda msg: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_json_numbers_beyond_float_are_refused():
    from hinas.errors import HinasError
    from hinas.safeio import parse_json

    assert parse_json('{"a": 1.5e300}', "x.json") == {"a": 1.5e300}
    for text in ('{"a": 1e999}', '[-1e400]', '{"a": {"b": 2E+5000}}'):
        with pytest.raises(HinasError, match="x.json.*finite"):
            parse_json(text, "x.json")


def test_an_empty_only_is_not_every_notebook():
    from hinas.book.execute import BookError, Paths, find_notebooks
    from hinas.book.settings import REPO_ROOT

    with pytest.raises(BookError, match="names no notebook"):
        find_notebooks(Paths(REPO_ROOT), ["", " "])
    assert len(find_notebooks(Paths(REPO_ROOT), ["01"])) == 1
