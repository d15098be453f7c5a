"""GPU campaigns: run a plan's next undone items inside a time budget; verify the results.

``hinas campaign run --plan NAME|FILE --budget SECONDS --results DIR`` works through a plan (a
YAML file; :data:`PLANS_DIR` holds ``smoke`` and ``paper``) in order, skipping finished
items, and stops cleanly before the budget ends, so that one command per GPU window does the
most work and loses none:

* the whole call is checked first (:mod:`~hinas.campaign.preflight`: budget, device, data root,
  archive, every plan option, :mod:`~hinas.campaign.options`), then the results folder is
  locked for the call (one ``campaign run`` or ``seal`` per folder);
* each item works in ``DIR/<item>/``; search and training run in ``DIR/<item>/run/`` with the
  engine's atomic checkpoints, and a piece that meets the deadline checkpoints and pauses
  (``stop_at``); the next call resumes it. A half-done item that cannot be resumed (damaged
  checkpoint, changed settings) is restarted from scratch, never patched
  (:mod:`~hinas.campaign.runners`);
* a finished item leaves its results in ``DIR/<item>/`` (``summary.json`` with metrics,
  params, FLOPs, timings, per-image scores and provenance; genotype; safetensors weights;
  histories; alpha/beta CSVs), then ``manifest.json`` (every file with its size and sha256,
  :mod:`~hinas.campaign.manifest`), then the ``done`` marker, written last and atomically; only
  then is the work folder removed. An item without ``done`` is pending, whatever else is there;
  one whose manifest does not check is ``corrupt`` or ``incomplete``: reported, never run over,
  never deleted (exit 1);
* an item that fails (divergence, out of memory) is recorded in ``error.json`` and skipped,
  with the items that depend on it; ``--retry-failed`` tries it again.

Item kinds: ``bench`` (Eq. 5 vs Eq. 6 memory/time, search-step speed), ``search``, ``rsws``
(random search with weight sharing: ``samples`` random architectures ranked with the supernet of
the search item ``supernet_from``), ``train`` (``genotype_from`` a search or rsws item, or
``model: dncnn``), ``eval`` (``network_from`` a train item; protocols x precisions, each part
saved as it finishes), ``baseline`` (a restorer without a network: the noisy input, BM3D). ``budget: SECONDS`` on a search
or train item sizes its schedule to fit (:mod:`hinas.engine.budget`); ``long: true`` runs its
config's fixed length over as many calls as it takes, optionally with a learning ``curve``
(:mod:`~hinas.campaign.long`); a train item waits while its search did not move, and ``status``
estimates the seconds to finish (:mod:`~hinas.campaign.status`).

``hinas verify DIR`` checks every item and re-evaluates every stored network on the CPU against
its stored per-image scores (:mod:`~hinas.campaign.verify`, :data:`TOLERANCE_DB`); ``hinas
campaign seal`` writes manifests for items finished before manifests, once they check
(:mod:`~hinas.campaign.seal`). The command line is :mod:`hinas.cli.campaign`.

Only numpy/torch/scipy/PIL/scikit-image/pyyaml/safetensors/tqdm are imported on these paths,
so the runner works on a bare GPU machine (no graphviz, bm3d, papermill, jupyter-book).
"""

from hinas.campaign.archive import ARCHIVE_PART_BYTES, unpack_archives, write_archive
from hinas.campaign.folders import DONE, MANIFEST, SUMMARY, jsonable, read_json, results_lock, write_json
from hinas.campaign.manifest import check_item, write_manifest
from hinas.campaign.options import item_config
from hinas.campaign.plan import KINDS, PLANS_DIR, SETTABLE, Item, Plan, list_plans, load_plan, parse_settings
from hinas.campaign.preflight import check_archive, check_budget, check_call
from hinas.campaign.rows import result_rows
from hinas.campaign.run import FINAL_RESERVE, run_campaign
from hinas.campaign.seal import seal
from hinas.campaign.status import campaign_status, item_status
from hinas.campaign.verify import TOLERANCE_DB, verify

__all__ = ["ARCHIVE_PART_BYTES", "DONE", "FINAL_RESERVE", "KINDS", "MANIFEST", "PLANS_DIR", "SETTABLE", "SUMMARY",
           "TOLERANCE_DB", "Item", "Plan", "campaign_status", "check_archive", "check_budget", "check_call",
           "check_item", "item_config", "item_status", "jsonable", "list_plans", "load_plan", "parse_settings",
           "read_json", "result_rows", "results_lock", "run_campaign", "seal", "unpack_archives", "verify", "write_archive",
           "write_json", "write_manifest"]
