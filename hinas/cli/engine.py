"""``hinas search`` and ``hinas train``."""

from __future__ import annotations

from hinas.cli import PathArg
from hinas.errors import HinasError


def _common(p) -> None:
    p.add_argument("--task", choices=("denoise", "sr"), default=None, help="denoise (default) or sr")
    p.add_argument("--scale", type=int, default=None, help="SR factor (2, 3, 4)")
    p.add_argument("--sigma", type=float, nargs="+", default=None,
                   help="noise level(s) on the 0-255 scale; search: drawn per sample (default 30 50 70), "
                        "train: the level to train for (default 50)")
    p.add_argument("--profile", default=None, help="smoke | quick | gpu | paper (default: quick; not with --config)")
    p.add_argument("--config", default=None, metavar="YAML", action=PathArg, want="file", missing_ok=True,
                   help="settings file (e.g. hinas/configs/*.yaml); it names its own profile and task")
    p.add_argument("--out", required=True, metavar="DIR", action=PathArg, want="folder", missing_ok=True,
                   help="run folder (never overwritten without --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set epochs=10 (repeatable)")
    p.add_argument("--data-root", default=None, metavar="DIR", action=PathArg, want="folder",
                   help="datasets folder (default: $HINAS_DATA or embedded)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the profile's)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="size the schedule to fit this many seconds, measured in a short warm-up (hinas.engine.budget)")


_PROFILES_HELP = ("profiles: smoke (seconds, tests), quick (minutes on a CPU), gpu (~8 min on one H100), "
                  "paper (the released code's schedule)\nall settings and their meanings: hinas config show "
                  "--profile P --task T")
_EPILOG = {
    "search": "examples:\n  hinas search --task denoise --profile quick --out runs/s1\n"
              "  hinas search --config hinas/configs/sr_x4.yaml --out runs/sr4 --set epochs=10\n"
              "  hinas search --task denoise --profile quick --out runs/s1 --resume\n" + _PROFILES_HELP,
    "train": "examples:\n  hinas train --genotype runs/s1/genotype.json --task denoise --sigma 50 --profile quick "
             "--out runs/t1\n  hinas train --model dncnn --task denoise --sigma 30 --profile quick --out runs/d1\n"
             + _PROFILES_HELP,
}


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def register_cli(subparsers) -> None:
    s = subparsers.add_parser("search", help="bilevel architecture search; writes genotype.json, history.csv, summary.json",
                              epilog=_EPILOG["search"], formatter_class=_raw())
    _common(s)
    s.set_defaults(func=_search)
    t = subparsers.add_parser("train", help="train the network of a genotype from scratch (or the DnCNN baseline)",
                              epilog=_EPILOG["train"], formatter_class=_raw())
    _common(t)
    t.add_argument("--genotype", default=None, metavar="JSON", action=PathArg, want="file", missing_ok=True,
                   help="genotype file from 'hinas search'")
    t.add_argument("--model", choices=("hinas", "dncnn"), default=None, help="network to train (default: hinas)")
    t.set_defaults(func=_train)


def build_config(args, train: bool = False):
    from hinas.engine.config import RunConfig

    if args.config:
        if args.profile is not None:
            raise HinasError("give --profile or --config, not both: a config file names its own profile "
                             "(override single settings with --set KEY=VALUE)")
        cfg = RunConfig.from_yaml(args.config)
        if args.task is not None and args.task != cfg.task:
            raise HinasError(f"--task {args.task} contradicts the config file's task {cfg.task}; drop one")
    else:
        cfg = RunConfig.from_profile(args.profile or "quick", args.task or "denoise", args.scale)
    if cfg.task == "denoise" and args.scale is not None:
        raise HinasError(f"--scale {args.scale} is for super-resolution; add --task sr, or drop --scale for denoising")
    changes = {}
    if args.scale is not None:
        changes["scale"] = args.scale
    if args.sigma is not None:
        changes["sigma" if train else "search_sigma"] = list(args.sigma)
    for name in ("data_root", "device", "seed"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.quiet:
        changes["quiet"] = True
    if getattr(args, "model", None):
        changes["model"] = args.model
    if changes:
        cfg = cfg.replace(**changes)
    return cfg.with_overrides(args.overrides)


def _search(args) -> int:
    import json

    from hinas.engine.search import search

    cfg = build_config(args)
    plan = None
    if args.budget is not None:
        from hinas.engine.budget import budgeted

        cfg, plan = budgeted("search", cfg, args.budget, args.out, args.resume)
    summary = search(cfg, args.out, resume=args.resume)
    print(json.dumps(dict(summary, budget=plan) if plan else summary))
    return 0


def _train(args) -> int:
    import json

    from hinas.engine.train import train
    from hinas.space.genotype import Genotype

    cfg = build_config(args, train=True)
    genotype = None
    if cfg.model == "hinas":
        if not args.genotype:
            raise HinasError("hinas train needs --genotype FILE (or --model dncnn for the baseline)")
        genotype = Genotype.load(args.genotype)
    plan = None
    if args.budget is not None:
        from hinas.engine.budget import budgeted

        cfg, plan = budgeted("train", cfg, args.budget, args.out, args.resume, genotype)
    summary = train(cfg, genotype, args.out, resume=args.resume)
    print(json.dumps(dict(summary, budget=plan) if plan else summary))
    return 0
