"""``hinas config show``: every run setting with its value and a one-line meaning, by group.

    hinas config show                                  # the quick profile, denoising
    hinas config show --profile paper --task sr --scale 4
    hinas config show --config hinas/configs/denoise_sigma50.yaml --set search.epochs=10 --json

The values are those ``hinas search`` / ``hinas train`` would use with the same options (the
same :class:`~hinas.engine.config.RunConfig`); the groups and the meanings live on the fields
in :mod:`hinas.engine.config` (``GROUPS``; each field's ``metadata``).
"""

from __future__ import annotations

import argparse


def register_cli(subparsers) -> None:
    from hinas.cli import PathArg
    from hinas.engine.config import GROUPS, PROFILES

    p = subparsers.add_parser("config", help="show the run settings (hinas config show)")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    s = sub.add_parser(
        "show", help="print every setting with its value and meaning, by group",
        description="Print every RunConfig setting (what --set KEY=VALUE or --set GROUP.KEY=VALUE accepts) with "
                    "its value and meaning, under its group's heading.",
        epilog="examples:\n"
               "  hinas config show\n"
               "  hinas config show --profile paper --task sr --scale 4\n"
               "  hinas config show --config hinas/configs/denoise_sigma50.yaml --set search.epochs=10 --json\n"
               f"profiles: {', '.join(PROFILES)}\n"
               f"groups: {', '.join(GROUPS)} (and the top-level task, scale, profile, seed)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--profile", default="quick", choices=PROFILES, help="preset (default: quick)")
    s.add_argument("--task", choices=("denoise", "sr"), default="denoise")
    s.add_argument("--scale", type=int, default=None, help="SR factor (2, 3, 4)")
    s.add_argument("--config", default=None, metavar="YAML", action=PathArg, want="file", missing_ok=True,
                   help="settings file, as for search/train")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting (repeatable; KEY or GROUP.KEY), as for search/train")
    s.add_argument("--json", action="store_true",
                   help="print one JSON object: {profile, task, scale, key, config (the grouped settings, as a "
                        "config file holds them), help (the same shape, each setting's meaning)}")
    s.set_defaults(func=_show)


def _show(args) -> int:
    from hinas.cli import print_json
    from hinas.engine.config import GROUPS, RunConfig, describe_settings

    if args.config:
        cfg = RunConfig.from_yaml(args.config)
        if args.scale is not None:
            cfg = cfg.replace(scale=args.scale)
    else:
        cfg = RunConfig.from_profile(args.profile, args.task, args.scale)
    cfg = cfg.with_overrides(args.overrides)
    rows = describe_settings(cfg)
    if args.json:
        helps: dict = {}
        for r in rows:
            (helps.setdefault(r["group"], {}) if r["group"] else helps)[r["key"]] = r["help"]
        print_json({"profile": cfg.profile, "task": cfg.task, "scale": cfg.scale, "key": cfg.key(),
                    "config": cfg.to_nested(), "help": helps})
        return 0
    print(f"# profile {cfg.profile}, task {cfg.task}{f' x{cfg.scale}' if cfg.scale else ''} "
          f"(change any with --set KEY=VALUE or --set GROUP.KEY=VALUE)")
    width = max(len(r["key"]) for r in rows)
    vwidth = min(max(len(_fmt(r["value"])) for r in rows), 18)
    group = None
    for r in rows:
        if r["group"] != group:
            group = r["group"]
            print(f"\n{group}: {GROUPS[group]}")
        indent = "  " if group else ""
        print(f"{indent}{r['key']:<{width + 2 - len(indent)}}  {_fmt(r['value']):<{vwidth}}  {r['help']}")
    return 0


def _fmt(value) -> str:
    import json

    return json.dumps(value) if not isinstance(value, str) else value
