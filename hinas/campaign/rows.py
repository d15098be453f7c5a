"""The finished items of a campaign results folder as flat rows, for the book's tables.

An item with a manifest is read only when the manifest checks; an item finished before
manifests (``done`` and a summary, no manifest) is read as it is: ``hinas campaign seal``
checks and seals such items, ``hinas verify`` reports them.
"""

from __future__ import annotations

from pathlib import Path

from hinas.campaign.folders import DONE, MANIFEST, SUMMARY, read_json
from hinas.campaign.manifest import check_item


def result_rows(results) -> dict[str, list[dict]]:
    """The finished items of a campaign results folder as flat rows, one list per kind: ``search``,
    ``train``, ``eval`` (one row per dataset, protocol and precision, with its network's model,
    size, seed, schedule and training precision; a baseline's rows name its method as the model) and ``bench``. Every row names its item, device, profile and seed."""
    results = Path(results)
    done = {}
    for summary_file in sorted(results.glob(f"*/{SUMMARY}")):
        folder = summary_file.parent
        summary = read_json(summary_file)
        if not isinstance(summary, dict) or not (folder / DONE).exists():
            continue
        if (folder / MANIFEST).exists() and check_item(folder)["state"] != "done":
            continue  # a manifest that does not check: these numbers are not shown
        done[folder.name] = summary
    rows: dict[str, list[dict]] = {"search": [], "train": [], "eval": [], "bench": []}

    def common(s: dict) -> dict:
        prov, cfg = s.get("provenance", {}), s.get("config", {})
        return {"item": s.get("item"), "device": s.get("device"), "profile": prov.get("profile", cfg.get("profile")),
                "seed": prov.get("seed", cfg.get("seed")), "git_revision": prov.get("git_revision"),
                "finished": prov.get("finished")}

    def schedule(s: dict, what: str) -> dict:
        sched = s.get("schedule", {})
        planned, paper = sched.get(f"planned_{what}"), sched.get(f"paper_{what}")
        return {f"{what}": planned, f"paper_{what}": paper,
                "fraction_of_paper": planned / paper if planned and paper else None,
                "budget_seconds": (sched.get("budget") or {}).get("budget_seconds")}

    for name, s in done.items():
        kind, metrics = s.get("kind"), s.get("metrics", {})
        if kind == "search":
            rows["search"].append({**common(s), "task": s.get("config", {}).get("task"), **schedule(s, "epochs"),
                                   "seconds": s.get("timings", {}).get("search_seconds"),
                                   "val_psnr": metrics.get("val_psnr"), "val_ssim": metrics.get("val_ssim"),
                                   **{k: (s.get("movement") or {}).get(k) for k in ("moved", "alpha_max_dev",
                                                                                    "beta_max_change")},
                                   "genotype": str(results / name / "genotype.json")})
        elif kind == "train":
            cfg = s.get("config", {})
            rows["train"].append({**common(s), "model": s.get("model"), "task": cfg.get("task"),
                                  "sigma": (cfg.get("sigma") or [None])[0], "scale": cfg.get("scale"),
                                  "params": s.get("params"), **schedule(s, "iterations"),
                                  "train_precision": "bf16" if cfg.get("amp_bf16") else "fp32",
                                  "iterations_per_second": s.get("timings", {}).get("iterations_per_second"),
                                  "seconds": s.get("timings", {}).get("train_seconds"),
                                  "val_psnr": metrics.get("val_psnr"), "val_ssim": metrics.get("val_ssim"),
                                  "best_iteration": metrics.get("best_iteration"),
                                  "training": (s.get("health") or {}).get("status"),
                                  "training_evidence": (s.get("health") or {}).get("evidence")})
        elif kind == "bench":
            mem, speed = s.get("supernet_memory", {}), s.get("search_speed", {})
            rows["bench"].append({**common(s), **{k: metrics.get(k) for k in ("memory_ratio", "time_ratio",
                                                                                "analytic_ratio")},
                                  **{f"{eq}_{k}": mem.get(eq, {}).get(k) for eq in ("eq5", "eq6")
                                     for k in ("peak_bytes", "step_seconds")},
                                  **{f"search_step_seconds_{v}": d.get("step_seconds")
                                     for v, d in speed.get("variants", {}).items()}})
    for name, s in done.items():
        if s.get("kind") not in ("eval", "baseline"):
            continue
        net = done.get(s.get("network"), {}) if s.get("network") else {}
        net_cfg = net.get("config", {})
        for ev in s.get("evaluations", []):
            rows["eval"].append({**common(s), "profile": net_cfg.get("profile", s.get("provenance", {}).get("plan_profile")),
                                 "seed": net_cfg.get("seed"),
                                 "network": s.get("network"),
                                 "model": net.get("model", s.get("method")), "params": s.get("params"),
                                 "train_precision": ("bf16" if net_cfg.get("amp_bf16") else "fp32") if net else None,
                                 "train_iterations": net.get("schedule", {}).get("planned_iterations"),
                                 "paper_iterations": net.get("schedule", {}).get("paper_iterations"),
                                 "train_seconds": net.get("timings", {}).get("train_seconds"),
                                 "best_iteration": net.get("metrics", {}).get("best_iteration"),
                                 "training": (net.get("health") or {}).get("status"),
                                 "training_evidence": (net.get("health") or {}).get("evidence"),
                                 **{k: ev.get(k) for k in ("dataset", "task", "sigma", "scale", "protocol",
                                                           "precision", "images", "psnr", "ssim",
                                                           "inference_seconds", "seconds_total", "embedded")}})
    return rows
