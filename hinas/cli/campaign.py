"""``hinas campaign run|status|plans|seal|unpack`` and ``hinas verify``: the command line of
:mod:`hinas.campaign`.

Exit codes: 0 when everything asked for was done and checks; 1 when the call ran but an item
failed (now, or in an earlier call and not retried), is ``CORRUPT`` or ``INCOMPLETE``, could not
be sealed, or does not verify (the report is still printed); 2 when the call itself is refused
before anything is written (a bad plan, budget, device, data root or archive; the folder locked
by another call) or stopped by an error of the call (a full disk, a permission): one line on
stderr. ``--json`` output is always valid JSON (non-finite numbers are written as null).
"""

from __future__ import annotations

import sys
import time

from hinas.campaign import (SETTABLE, campaign_status, check_archive, check_budget, check_call, jsonable,
                            list_plans, load_plan, parse_settings, results_lock, run_campaign, seal,
                            unpack_archives, verify, write_archive)
from hinas.campaign.archive import archive_parts
from hinas.campaign.plan import is_plan_file
from hinas.cli import PathArg
from hinas.engine.config import PROFILES
from hinas.errors import HinasError
from hinas.safeio import check_path


def _print_json(obj) -> None:
    from hinas.cli import print_json

    print_json(jsonable(obj))


def register_cli(subparsers) -> None:
    c = subparsers.add_parser("campaign", help="run a plan of GPU experiments inside a time budget, resumably")
    sub = c.add_subparsers(dest="campaign", metavar="ACTION", required=True)
    r = sub.add_parser("run", help="run the next undone items of a plan, stopping cleanly before the budget")
    _plan_args(r)
    r.add_argument("--budget", type=float, required=True, metavar="SECONDS",
                   help="wall-clock seconds for this call, finite and positive (items stop cleanly before it ends)")
    r.add_argument("--device", default=None, help="cpu, cuda or cuda:N for every item (default: each item's profile)")
    _data_root(r, "datasets folder (default: $HINAS_DATA or embedded)")
    r.add_argument("--retry-failed", action="store_true", help="run again the items that failed in earlier calls")
    r.add_argument("--only", nargs="+", default=None, metavar="ITEM", action=PathArg, want="name", what="item name",
                   help="run only these items (e.g. the long search on a CPU); the others are left as they are")
    r.add_argument("--archive", default=None, metavar="FILE.tgz", action=PathArg, want="file", missing_ok=True,
                   help="afterwards, pack every file this call wrote under DIR into FILE.tgz (split into "
                        "FILE.tgz.1, .2, ... above 15 MiB); unpack with: hinas campaign unpack FILE.tgz --results DIR")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"how every search/train item runs (repeatable): {', '.join(SETTABLE)}; e.g. the "
                        f"levers of `hinas bench gpu-levers REPORT`")
    r.add_argument("--json", action="store_true", help="print the report as one JSON object (the default)")
    r.set_defaults(func=_cli_run)
    s = sub.add_parser("status", help="which items of a plan are done or pending in a results folder")
    _plan_args(s)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_cli_status)
    lp = sub.add_parser("plans", help="list the plans shipped with hinas")
    lp.set_defaults(func=_cli_plans)
    se = sub.add_parser("seal", help="write manifests for finished items that have none, once they verify")
    se.add_argument("--results", required=True, metavar="DIR", action=PathArg, want="folder",
                    help="a results folder of 'hinas campaign run'")
    se.add_argument("--items", nargs="+", default=None, metavar="ITEM", action=PathArg, want="name", what="item name",
                    help="only these items (default: all)")
    se.add_argument("--images", type=int, default=3, metavar="N",
                    help="first N images of each evaluation re-evaluated (default 3)")
    _data_root(se)
    se.add_argument("--json", action="store_true", help="print one JSON object")
    se.set_defaults(func=_cli_seal)
    u = sub.add_parser("unpack", help="unpack GPU windows' archives into a results folder, all or nothing (never "
                                      "over a sealed item's files, never through a link)")
    u.add_argument("archives", nargs="+", metavar="FILE.tgz", action=_ArchiveArg,
                   help="results.tgz / notebooks.tgz of a window (its .1, .2, ... parts are found beside it), in order")
    u.add_argument("--results", required=True, metavar="DIR", action=PathArg, want="folder", missing_ok=True,
                   help="the results folder (e.g. results/paper)")
    u.add_argument("--json", action="store_true", help="print one JSON object")
    u.set_defaults(func=_cli_unpack)

    v = subparsers.add_parser("verify", help="check a results folder and re-evaluate its networks on the CPU")
    v.add_argument("results", metavar="DIR", action=PathArg, want="folder", help="a results folder of 'hinas campaign run'")
    v.add_argument("--images", type=int, default=3, metavar="N", help="first N images of each evaluation (default 3)")
    v.add_argument("--all-images", action="store_true", help="every image (slow for big sets)")
    _data_root(v)
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(func=_cli_verify)


def _plan_args(p) -> None:
    p.add_argument("--plan", required=True, metavar="NAME|FILE", action=_PlanArg, want="file", missing_ok=True,
                   help="plan name (hinas campaign plans) or YAML file")
    p.add_argument("--results", required=True, metavar="DIR", action=PathArg, want="folder", missing_ok=True,
                   help="results folder (created; continued if it exists); a plan's included plans use the "
                        "sibling folders named after them")
    p.add_argument("--profile", default=None, choices=PROFILES,
                   help="the scale of a plan with profiles (the book's chapter plans: smoke, quick, gpu, paper)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="added to every seed of a plan with profiles")


def _cli_plans(args) -> int:
    """One line per shipped plan: its name and, for a plan with profiles, the --profile values it takes."""
    from hinas.campaign.plan import profiles_of

    for name in list_plans():
        profiles = [p for p in profiles_of(name) if p]
        print(name + (f" (--profile {'|'.join(profiles)})" if profiles else ""))
    return 0


def _data_root(p, help: str = "datasets folder (default: $HINAS_DATA)") -> None:
    p.add_argument("--data-root", default=None, metavar="DIR", action=PathArg, want="folder", help=help)


class _PlanArg(PathArg):
    """``--plan``: a shipped plan's name, or a YAML file (any value with a folder or a suffix in it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if is_plan_file(values):
            return super().__call__(parser, namespace, values, option_string)
        if not values.strip():
            raise HinasError(f"--plan {values!r}: an empty plan name; give one of {', '.join(list_plans())} or a YAML file")
        setattr(namespace, self.dest, values)


class _ArchiveArg(PathArg):
    """An archive to unpack: a regular file, or absent when its parts ``FILE.tgz.1``, ``.2``, ... are there."""

    def __call__(self, parser, namespace, values, option_string=None):
        for value in values:
            check_path(value, "file", missing_ok=True, flag="FILE.tgz")
            for part in archive_parts(value):
                check_path(part, "file", flag="FILE.tgz")
        setattr(namespace, self.dest, values)


def _cli_run(args) -> int:
    started, wall = time.monotonic(), time.time()
    plan = load_plan(args.plan, args.profile, args.seed)
    settings = parse_settings(args.set)
    budget = check_budget(args.budget)
    archive = check_archive(args.archive, args.results) if args.archive else None
    check_call(plan, args.results, budget=budget, device=args.device, data_root=args.data_root, settings=settings,
               only=args.only)
    report, error = None, None
    with results_lock(args.results):  # refused (exit 2) while another call works in the folder
        try:
            report = run_campaign(plan, args.results, budget, device=args.device, data_root=args.data_root,
                                  retry_failed=args.retry_failed, started=started, settings=settings,
                                  only=args.only)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, once the archive is written
            error = exc
        if archive is not None:  # whatever happened, what was written comes back
            try:
                parts = write_archive(args.results, wall - 1.0, archive)
                if report is not None:
                    report["archive"] = parts
            except OSError as exc:
                if error is None:
                    raise
                print(f"campaign: the archive could not be written ({exc})", file=sys.stderr)
    if error is not None:
        raise error
    _print_json(report)
    return 0 if report["ok"] else 1


def format_status(report: dict) -> list[str]:
    """The lines of ``hinas campaign status``: one per item, then the totals."""
    from hinas.engine.movement import describe

    lines = []
    for it in report["items"]:
        state = it["status"].upper() if it["status"] in ("corrupt", "incomplete", "stale") else it["status"]
        text = f"{state:8s} {it['name']} ({it['kind']}; {it['pieces']} pieces, {float(it['seconds']):.0f} s spent"
        if it["status"] != "done":
            if it.get("estimate") is not None:
                text += f"; ~{it['estimate']:.0f} s to finish"
                if it.get("speed"):
                    text += f" ({it['position']}/{it['total']} {it['unit']} at {it['speed']:.3g}/s, {it['estimate_from']})"
                else:
                    text += f" (its {it.get('estimate_from', 'estimate')})"
            elif it["status"] not in ("corrupt", "incomplete", "stale"):
                text += f"; to finish: unknown ({it.get('estimate_from')})"
        if it.get("by_device"):
            text += "; pieces " + ", ".join(f"{d}: {v['pieces']} ({v['seconds']:.0f} s)" for d, v in it["by_device"].items())
        text += ")"
        if it.get("movement") is not None or (it["kind"] == "search" and it["status"] == "done"):
            text += f"; {describe(it['name'], it.get('movement'))}"
        for key in ("problem", "reason", "note", "error"):
            if it.get(key):
                text += f": {it[key]}"
                break
        lines.append(text)
    t = report["totals"]
    bad = "".join(f", {t[s]} {s.upper()}" for s in ("corrupt", "incomplete", "stale") if t.get(s))
    lines.append(f"{t['done']} done, {t['pending']} pending, {t['waiting']} waiting, {t['failed']} failed{bad}; "
                 f"{t['seconds_spent']:.0f} s spent; ~{t['seconds_to_finish']:.0f} s estimated to finish the pending "
                 f"items" + (f" ({t['pending_without_estimate']} without an estimate yet)"
                             if t["pending_without_estimate"] else "")
                 + (f"; ~{t['seconds_to_finish_waiting']:.0f} s more for the waiting ones" if t["waiting"] else ""))
    return lines


def _cli_status(args) -> int:
    report = campaign_status(load_plan(args.plan, args.profile, args.seed), args.results)
    if args.json:
        _print_json(report)
    else:
        print("\n".join(format_status(report)))
    return 1 if report["corrupt"] or report["incomplete"] or report.get("stale") else 0


def _cli_seal(args) -> int:
    log = (lambda msg: print(f"seal: {msg}", file=sys.stderr, flush=True)) if args.json else None
    report = seal(args.results, items=args.items, images=args.images, data_root=args.data_root, log=log)
    if args.json:
        _print_json(report)
    else:
        for s in report["sealed"]:
            print(f"sealed   {s['item']} ({s['kind']}): {s['checked']}")
        for name in report["already"]:
            print(f"already  {name}: its manifest checks")
        for r in report["refused"]:
            print(f"{r['state'].upper():8s} {r['item']}: not sealed: {r['reason']}")
        if not (report["sealed"] or report["already"] or report["refused"]):
            print(f"nothing to seal: no finished item under {args.results}")
    return 0 if report["ok"] else 1


def _cli_unpack(args) -> int:
    report = unpack_archives(args.archives, args.results)
    if args.json:
        _print_json(report)
    else:
        for item, n in sorted(report["items"].items()):
            print(f"unpacked {item}: {n} file(s)")
        print(f"{len(report['files'])} file(s) from {len(report['parts'])} archive file(s) into {args.results}; "
              f"next: hinas campaign status, then hinas verify {args.results}")
    return 0


def _cli_verify(args) -> int:
    report = verify(args.results, images=None if args.all_images else args.images, data_root=args.data_root)
    if args.json:
        _print_json(report)
    else:
        for n in report["networks"]:
            print(f"{'match' if n['match'] else 'DIFFERS':7s} {n['path']} ({n['device']}): max "
                  f"{n['max_diff_db']:.4f} dB over {len(n['checked'])} evaluations")
        for p in report["problems"]:
            print(f"{p['state'].upper()} {p['path']}: {p['reason']}")
        for n in report["notes"]:  # e.g. a summary naming a data root the verifier did not use
            print(f"note {n['path']}: {n['note']}")
    return 0 if report["match"] else 1

