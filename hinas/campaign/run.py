"""``run_campaign``: a plan's next undone items, in order, inside a time budget.

* The call is checked whole first (:mod:`hinas.campaign.preflight`), then the results folder is
  locked for the call (:func:`hinas.campaign.folders.results_lock`).
* Items run in plan order; trusted ``done`` items are skipped (their leftover work folders
  removed); ``corrupt``/``incomplete`` ones are reported, never run over, never deleted, and
  block their dependants; ``waiting`` ones (:func:`hinas.campaign.status.wait_reason`) and those
  whose dependencies are not done are skipped; failed ones are skipped unless
  ``retry_failed``; an item is not started with less than its ``estimate`` left.
* A finished item writes ``summary.json``, then ``manifest.json`` (every file, hashed), then the
  ``done`` marker (atomic, last); only then are its work folders removed.
* An item that fails (divergence, out of memory, a bad checkpoint) is recorded in its
  ``error.json`` and the plan goes on; an error of the call itself (data root, device, a full
  disk, a permission: :func:`hinas.campaign.runners.is_call_error`) is not the item's: it
  stops the call and is raised, with nothing recorded for the item.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

from hinas.campaign.folders import DONE, ERROR, SUMMARY, remove_work, results_lock, write_json
from hinas.campaign.manifest import write_manifest
from hinas.campaign.options import item_config
from hinas.campaign.plan import Item, Plan
from hinas.campaign.preflight import check_budget, check_call
from hinas.campaign.runners import (finish_search, finish_train, is_call_error, provenance_of, run_bench,
                                    run_engine, run_eval, run_rsws)
from hinas.campaign.status import campaign_status, item_status, wait_reason
from hinas.errors import HinasError
from hinas.safeio import names_file

# seconds kept free at the end of a call (at most 10% of its budget) for an item's final files
FINAL_RESERVE = 10.0


class Context:
    """What every runner of one call shares: the plan, the folder, the deadline, the options."""

    def __init__(self, plan: Plan, results: Path, deadline: float, budget: float, device, data_root, log,
                 settings: dict | None = None):
        self.plan, self.results, self.deadline = plan, results, deadline
        self.device, self.data_root, self.log = device, data_root, log
        self.settings = settings or {}
        self.reserve = min(FINAL_RESERVE, 0.1 * budget)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def stop_at(self) -> float:
        return self.deadline - self.reserve


def run_item(ctx: Context, item: Item) -> str:
    """Run (a piece of) one item; returns 'done', 'paused' or raises."""
    from hinas.campaign import long
    from hinas.space.genotype import Genotype

    folder = ctx.results / item.name
    with names_file(folder):
        folder.mkdir(parents=True, exist_ok=True)
    cfg = None
    if item.kind == "bench":
        body = run_bench(ctx, item)
    elif item.kind == "rsws":
        body, cfg = run_rsws(ctx, item)
        body["config"] = cfg.to_dict()
    elif item.kind in ("eval", "baseline"):
        body = run_eval(ctx, item)
        if body is None:
            return "paused"
    else:
        genotype = None
        if item.kind == "train" and item.genotype_from:
            genotype = Genotype.load(ctx.plan.folder(ctx.results, item.genotype_from) / "genotype.json")
            edit = item.options.get("genotype_edit")
            if edit:  # Table 6: the searched cells with ops replaced (R1) or connections changed (R2)
                from hinas.space.genotype import modify_genotype

                genotype = modify_genotype(genotype, edit["kind"], edit["edges"], seed=item_config(item, None, None).seed)
        run_piece = long.run_long if long.is_long(item) else run_engine
        out = run_piece(ctx, item, item.kind, genotype)
        if out is None:
            return "paused"
        cfg = out["config"]
        body = (finish_search if item.kind == "search" else finish_train)(ctx, item, out)
        body["config"] = cfg.to_dict()
        long.finish_extras(folder, item, body)
    summary = {"item": item.name, "kind": item.kind, "status": "done", "definition": item.definition, **body,
               "provenance": provenance_of(ctx.plan, item, cfg, ctx.device or (cfg.device if cfg else "cpu"))}
    summary["device"] = summary["provenance"]["device"]
    finish_item(folder, item.name, summary)
    return "done"


def finish_item(folder: Path, name: str, summary: dict) -> None:
    """summary, manifest, then ``done`` (last, atomic); then the work folders go."""
    write_json(folder / SUMMARY, summary)
    (folder / ERROR).unlink(missing_ok=True)  # a retried item keeps no stale error
    write_manifest(folder, name)
    write_json(folder / DONE, {"finished": summary["provenance"]["finished"]})  # last: the item is complete
    remove_work(folder)


def run_campaign(plan: Plan, results, budget: float, *, device=None, data_root=None, retry_failed: bool = False,
                 log=None, started: float | None = None, settings: dict | None = None, only=None) -> dict:
    """Run the next undone items of ``plan`` into ``results`` within ``budget`` seconds;
    ``settings`` (:func:`hinas.campaign.plan.parse_settings`) change how every search/train item
    runs; ``only`` (item names) runs those items and leaves the others as they are (e.g. the long
    search on a CPU, whose earlier GPU evaluations would not fit its budget). The report's ``ok``
    is False when an item failed or is corrupt or incomplete."""
    budget = check_budget(budget)
    log = log or (lambda msg: print(f"campaign: {msg}", file=sys.stderr, flush=True))
    t0 = started if started is not None else time.monotonic()
    # checked as given: Path('') would already be '.', "here", which an empty --results never means
    check_call(plan, results, budget=budget, device=device, data_root=data_root, settings=settings, only=only)
    results = Path(results)
    included = []
    for inc in plan.includes:  # the plans this one builds on first, each in its own (sibling) folder
        rep = run_campaign(inc, results.parent / inc.name, budget, device=device, data_root=data_root,
                           retry_failed=retry_failed, log=log, started=t0, settings=settings)
        included += [dict(r, plan=inc.name) for r in rep["ran"]]
    with results_lock(results):
        ctx = Context(plan, results, t0 + budget, budget, device, data_root, log, settings)
        ran = included + _run_items(ctx, plan, retry_failed, only)
        report = campaign_status(plan, results)
    report.update(budget=budget, elapsed=round(time.monotonic() - t0, 3), ran=ran,
                  ok=not any(report.get(s) for s in ("failed", "corrupt", "incomplete", "stale")))
    return report


def _run_items(ctx: Context, plan: Plan, retry_failed: bool, only=None) -> list[dict]:
    results, log = ctx.results, ctx.log
    ran, blocked, waiting, states = [], set(), {}, {}
    for item in (i for inc in plan.all_plans()[:-1] for i in inc.items):  # the included plans' (run before this)
        states[item.name] = item_status(plan.folder(results, item.name).parent, item)["status"]
    for item in plan.items:
        st = item_status(results, item)
        states[item.name] = st["status"]
        if only is not None and item.name not in only:
            continue  # not asked for in this call: left as it is (its dependants wait for it)
        if st["status"] == "done":
            remove_work(results / item.name)  # left by an older archive; the manifest checks
            continue
        if st["status"] in ("corrupt", "incomplete", "stale"):  # never run over, never deleted
            blocked.add(item.name)
            ran.append({"name": item.name, "status": st["status"], "problem": st["problem"]})
            log(f"{item.name}: {st['status'].upper()}: {st['problem']}; left as it is")
            continue
        reason = wait_reason(plan, results, item, waiting)  # e.g. its search did not move: never run, no error
        if reason:
            waiting[item.name] = reason
            blocked.add(item.name)
            ran.append({"name": item.name, "status": "waiting", "reason": reason})
            log(f"{item.name}: waiting ({reason})")
            continue
        if any(d in blocked or states.get(d) != "done" for d in item.depends):
            blocked.add(item.name)
            ran.append({"name": item.name, "status": "blocked", "by": item.depends})
            continue
        if st["status"] == "failed":
            if not retry_failed:
                blocked.add(item.name)
                continue
            (results / item.name / ERROR).unlink(missing_ok=True)
        if ctx.left() < item.estimate + ctx.reserve:
            # too little time for this one; a later, shorter item may still fit (its dependants wait)
            log(f"{item.name}: {ctx.left():.0f} s left, needs about {item.estimate:.0f} s; skipped in this call")
            blocked.add(item.name)
            continue
        log(f"{item.name} ({item.kind}): starting, {ctx.left():.0f} s left")
        t_item = time.monotonic()
        try:
            outcome = run_item(ctx, item)
        except (HinasError, RuntimeError, ValueError, OSError) as exc:
            if is_call_error(exc):  # the call's problem, not the item's: nothing recorded, the call stops
                log(f"{item.name}: stopped by an error of the call ({exc.__class__.__name__}: {exc})")
                raise
            # recorded, and the rest of the plan goes on; the message names what to change
            write_json(results / item.name / ERROR,
                       {"error": f"{exc.__class__.__name__}: {exc}", "traceback": traceback.format_exc(limit=8)})
            blocked.add(item.name)
            outcome = "failed"
            log(f"{item.name}: failed ({exc.__class__.__name__}: {exc})")
        states[item.name] = outcome
        ran.append({"name": item.name, "status": outcome, "seconds": round(time.monotonic() - t_item, 3)})
        log(f"{item.name}: {outcome} after {time.monotonic() - t_item:.1f} s")
        if outcome == "paused":
            break
    return ran
