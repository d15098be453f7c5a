"""``hinas bench ...``: benchmarks that print figures and ratios measured in one run
(:mod:`hinas.bench.measure`, :mod:`hinas.bench.released`, :mod:`hinas.bench.gpu`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hinas.bench.measure import gradient_scope, search_speed, supernet_memory, train_stability
from hinas.bench.gpu import campaign_levers, fast_path_equivalence, gpu_speed, report_is_current
from hinas.cli import PathArg, print_json
from hinas.errors import HinasError


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("bench", help="benchmarks that print figures and ratios")
    sub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    m = sub.add_parser("supernet-memory", help="peak memory and time of a search step, Eq. 5 vs Eq. 6")
    m.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    m.add_argument("--batch", type=int, default=6, help="batch size (paper dn search: 6)")
    m.add_argument("--size", type=int, default=64, help="patch size (64)")
    m.add_argument("--layers", type=int, default=3, help="L (paper dn: 3)")
    m.add_argument("--levels", type=int, default=3, help="S (3)")
    m.add_argument("--steps", type=int, default=4, help="B nodes per cell (dn: 4)")
    m.add_argument("--f", type=int, default=10, help="channels per node at level 0 (search: 10)")
    m.add_argument("--widths", default="1,1.5,2", help="width factors, comma separated")
    m.add_argument("--repeats", type=int, default=2, help="timed steps (median reported)")
    m.add_argument("--memory-saving", choices=("none", "recompute"), default=None,
                   help="also measure Eq. 5 with this memory saving (result['saving'])")
    m.add_argument("--partial-channels", type=int, default=1, metavar="K",
                   help="also measure Eq. 5 with PC-DARTS partial channels 1/K (changes the search)")
    m.add_argument("--no-eq6", action="store_true", help="skip Eq. 6 (the slowest part on a CPU)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=_cli_supernet_memory)

    sp = sub.add_parser("search-speed", help="data vs compute time of a search iteration (fp32, bf16, channels_last)")
    sp.add_argument("--profile", default="paper", help="profile whose batch, crop and grid to use (default: paper)")
    sp.add_argument("--task", choices=("denoise", "sr"), default="denoise")
    sp.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    sp.add_argument("--steps", type=int, default=3, help="timed iterations (median reported)")
    sp.add_argument("--data-root", action=PathArg, want="folder", default=None)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=_cli_search_speed)

    ts = sub.add_parser("train-stability", help="losses of derived-network training at the released lr 0.05 "
                                                "(batch 24, 64x64, f=20) on real images: finite and falling?")
    ts.add_argument("--iterations", type=int, default=500)
    ts.add_argument("--batch", type=int, default=24)
    ts.add_argument("--patch", type=int, default=64)
    ts.add_argument("--f", type=int, default=20)
    ts.add_argument("--lr", type=float, default=0.05)
    ts.add_argument("--sigma", type=float, default=50.0)
    ts.add_argument("--seed", type=int, default=0)
    ts.add_argument("--bn-init", choices=("torch1", "ones"), default="torch1")
    ts.add_argument("--nonpositive-ssim", choices=("gradient", "clamp"), default="gradient")
    ts.add_argument("--no-rescale-aug", action="store_true", help="no RandomRescaleCrop")
    ts.add_argument("--genotype", action=PathArg, want="file", missing_ok=True, default=None, help="genotype JSON (default: random_genotype(seed))")
    ts.add_argument("--max-images", type=int, default=None, help="only the first N training images")
    ts.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ts.add_argument("--data-root", action=PathArg, want="folder", default=None)
    ts.add_argument("--json", action="store_true")
    ts.set_defaults(func=_cli_train_stability)

    sb = sub.add_parser("side-by-side", help="hinas vs the released code's own training step (needs a checkout of "
                                             "hkzhang-git/HiNAS; not run in CI)")
    sb.add_argument("--code", action=PathArg, want="folder", required=True, help="folder of a checkout of https://github.com/hkzhang-git/HiNAS")
    sb.add_argument("--iterations", type=int, default=40)
    sb.add_argument("--batch", type=int, default=24)
    sb.add_argument("--patch", type=int, default=64)
    sb.add_argument("--f", type=int, default=20)
    sb.add_argument("--seed", type=int, default=0)
    sb.add_argument("--max-images", type=int, default=None)
    sb.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    sb.add_argument("--data-root", action=PathArg, want="folder", default=None)
    sb.add_argument("--out", action=PathArg, want="file", missing_ok=True, default=None, help="also write the JSON trace here (e.g. results/side_by_side.json)")
    sb.add_argument("--json", action="store_true")
    sb.set_defaults(func=_cli_side_by_side)

    gs = sub.add_parser("grad-scope", help="search steps' backward: every gradient (the released code) against "
                                           "only those the step uses (hinas)")
    gs.add_argument("--profile", default="quick", help="profile whose supernet, batch and crop to use (default: quick)")
    gs.add_argument("--task", choices=("denoise", "sr"), default="denoise")
    gs.add_argument("--device", default="cpu")
    gs.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    gs.add_argument("--out", action=PathArg, want="file", missing_ok=True, default=None, help="also write the JSON here")
    gs.add_argument("--json", action="store_true")
    gs.set_defaults(func=_cli_grad_scope)

    _register_gpu_speed(sub)
    _register_cpu_speed(sub)


def _released_args(p, what: str) -> None:
    """``--code`` (a checkout of the released code) and ``--genotype`` of the speed benchmarks."""
    p.add_argument("--code", action=PathArg, want="folder", default=None,
                   help="folder of a checkout of https://github.com/hkzhang-git/HiNAS (fetched by you, never vendored); "
                        "without it no released rows")
    p.add_argument("--genotype", action=PathArg, want="file", missing_ok=True, default=None,
                   help=f"genotype JSON of the {what} (default: a random one)")


def _register_cpu_speed(sub) -> None:
    """``hinas bench cpu-speed``."""
    c = sub.add_parser("cpu-speed", help="training and search steps on the CPU: the released code's, hinas eager, "
                                         "and each CPU lever (channels_last, compile, bf16) alone and combined")
    _released_args(c, "derived network")
    c.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    c.add_argument("--steps", type=int, default=5, help="timed training rounds, one step of each variant a round (default 5)")
    c.add_argument("--search-steps", type=int, default=3, help="timed search rounds (default 3)")
    c.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                   help="only these variants (eager always runs); names as the report lists them")
    c.add_argument("--bf16", choices=("auto", "yes", "no"), default="auto",
                   help="measure the bf16 variants: auto (default) only where the CPU has native bf16")
    c.add_argument("--equivalence-steps", type=int, default=50,
                   help="training steps of the fp32 equivalence check (10 search steps; 0: none; default 50)")
    c.add_argument("--out", action=PathArg, want="file", missing_ok=True, default=None, help="also write the JSON here (results/bench/cpu_speed_<cpu>.json)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_cli_cpu_speed)


def _cli_cpu_speed(args) -> int:
    from hinas.bench.cpu import TRAIN_VARIANTS, cpu_speed
    from hinas.bench.released import check_checkout
    from hinas.space.genotype import Genotype, random_genotype

    if args.steps < 1 or args.search_steps < 1 or args.equivalence_steps < 0 or (args.threads or 1) < 1:
        raise HinasError("--steps, --search-steps and --threads must be at least 1, --equivalence-steps at least 0")
    known = [n for n, _ in TRAIN_VARIANTS]
    bad = [v for v in args.variants or () if v not in known]
    if bad:
        raise HinasError(f"--variants: unknown {', '.join(map(repr, bad))}; known: {', '.join(map(repr, known))}")
    if args.code:
        check_checkout(args.code)
    genotype = Genotype.load(args.genotype) if args.genotype else random_genotype("denoise", seed=0)
    log = (lambda msg: print(f"cpu-speed: {msg}", file=sys.stderr, flush=True))
    res = cpu_speed(genotype, code=args.code, threads=args.threads, steps=args.steps, search_steps=args.search_steps,
                    equivalence_steps=args.equivalence_steps, variants=args.variants,
                    bf16={"auto": None, "yes": True, "no": False}[args.bf16], log=log)
    res["genotype"] = {"file": args.genotype, "architecture": genotype.to_dict()}
    if args.out:
        _write_report(args.out, res)
    if args.json:
        print_json(res)
        return 0
    for part, key, prefix in (("train", "step_seconds", ""), ("search", "weight_step_seconds", ""),
                              ("search", "arch_step_seconds", "arch_")):
        rel = res[part].get("released")
        label = f"{part} {key.split('_step')[0]}" if part == "search" else part
        if rel:
            print(f"{label:13s} released code                   {rel[key]:8.3f} s")
        for name, r in res[part]["variants"].items():
            vs = r.get(f"{prefix}speedup_vs_released")
            print(f"{label:13s} {name:31s} {r[key]:8.3f} s  x{r[f'{prefix}speedup_vs_eager']:.2f} vs eager"
                  + (f"  x{vs:.2f} vs released" if vs else ""))
    for name, why in res["skipped"].items():
        print(f"skipped {name}: {why}")
    eq = res.get("equivalence")
    if eq:
        print(f"equivalence (fp32 levers vs eager): training loss {eq['train_max_loss_diff']:.2e}, "
              f"search loss {eq['search_max_loss_diff']:.2e}")
    print(f"{res['threads']} threads, {res['cpu']['model']}")
    return 0


def _register_gpu_speed(sub) -> None:
    """``hinas bench gpu-speed`` and ``gpu-levers``."""
    g = sub.add_parser("gpu-speed", help="training and search steps on one GPU: the released code's, hinas eager, "
                                         "and each lever of the fast path (needs CUDA)")
    _released_args(g, "derived network")
    g.add_argument("--steps", type=int, default=50, help="timed training steps per variant (default 50)")
    g.add_argument("--search-steps", type=int, default=10, help="timed search steps per variant (default 10)")
    g.add_argument("--equivalence", action="store_true", help="also compare the fast fp32 path with eager "
                                                                 "(50 training, 10 search steps; fp32 and TF32)")
    g.add_argument("--device", default="cuda")
    g.add_argument("--out", action=PathArg, want="file", missing_ok=True, default=None, help="also write the JSON here (e.g. results/bench/gpu_speed_h200.json)")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(func=_cli_gpu_speed)
    lv = sub.add_parser("gpu-levers", help="the --set options of the fast path a campaign should use after a "
                                           "gpu-speed report (eager when its equivalence check failed)")
    lv.add_argument("report", help="JSON of hinas bench gpu-speed --equivalence --out")
    lv.add_argument("--if-current", action="store_true",
                    help="exit 1 (printing nothing on stdout) unless the report measured this tree's step code "
                         "with its equivalence check: a GPU window then reuses it instead of measuring again")
    lv.set_defaults(func=_cli_gpu_levers)
def _cli_supernet_memory(args) -> int:
    for name in ("batch", "size", "layers", "levels", "steps", "f", "repeats"):
        if getattr(args, name) < 1:
            raise HinasError(f"--{name} must be at least 1")
    try:
        widths = tuple(float(w) for w in args.widths.split(","))
    except ValueError:
        raise HinasError(f"--widths must be numbers separated by commas, got {args.widths!r}") from None
    if args.partial_channels < 1:
        raise HinasError("--partial-channels must be at least 1 (1 = off)")
    res = supernet_memory(device=args.device, batch=args.batch, size=args.size, layers=args.layers,
                          levels=args.levels, steps=args.steps, f=args.f, width_factors=widths,
                          repeats=args.repeats, memory_saving=args.memory_saving,
                          partial_channels=args.partial_channels,
                          modes=("eq5",) if args.no_eq6 else ("eq5", "eq6"))
    if args.json:
        print_json(res)
    else:
        for mode in ("eq5", "eq6"):
            if mode not in res:
                continue
            r = res[mode]
            print(f"{mode}: peak {r['peak_bytes'] / 2**20:.1f} MiB, step {r['step_seconds']:.3f} s, "
                  f"{r['cell_evaluations']:g} width-weighted cell evaluations")
        if "memory_ratio" in res:
            print(f"memory ratio eq6/eq5 {res['memory_ratio']:.2f}, time ratio {res['time_ratio']:.2f}, "
                  f"analytic {res['analytic_ratio']:.2f} ({res['device']})")
        if "saving" in res:
            s = res["saving"]
            diff = "n/a (another network)" if s["grad_max_abs_diff"] is None else f"{s['grad_max_abs_diff']:.2e}"
            print(f"eq5 + {s['memory_saving']}, partial channels {s['partial_channels']}: peak "
                  f"{s['peak_bytes'] / 2**20:.1f} MiB, step {s['step_seconds']:.3f} s; memory {s['memory_ratio_vs_eq5']:.2f}x "
                  f"lower, time {s['time_ratio_vs_eq5']:.2f}x, max gradient difference {diff}")
    return 0
def _cli_search_speed(args) -> int:
    if args.steps < 1:
        raise HinasError("--steps must be at least 1")
    variants = ("fp32", "bf16", "channels_last") if args.device == "cuda" else ("fp32",)
    res = search_speed(profile=args.profile, task=args.task, device=args.device, steps=args.steps,
                       variants=variants, data_root=args.data_root)
    if args.json:
        print_json(res)
    else:
        print(f"data {res['data_seconds_per_batch'] * 1e3:.1f} ms/batch ({res.get('data_fraction', 0):.1%} of an "
              f"iteration); " + ", ".join(f"{k}: {v['step_seconds'] * 1e3:.1f} ms" for k, v in res["variants"].items() if v))
    return 0


def _cli_train_stability(args) -> int:
    for name in ("iterations", "batch", "patch", "f"):
        if getattr(args, name) < 1:
            raise HinasError(f"--{name.replace('_', '-')} must be at least 1")
    genotype = None
    if args.genotype:
        from hinas.space.genotype import Genotype

        genotype = Genotype.load(args.genotype)
    res = train_stability(iterations=args.iterations, batch=args.batch, patch=args.patch, f=args.f, lr=args.lr,
                          sigma=args.sigma, seed=args.seed, device=args.device, data_root=args.data_root,
                          genotype=genotype, bn_init=args.bn_init, nonpositive_ssim=args.nonpositive_ssim,
                          rescale_aug=not args.no_rescale_aug, max_images=args.max_images)
    if args.json:
        print_json(res)
    else:
        print(f"lr {res['lr']} bn_init {res['bn_init']}: loss {res['first']:.4f} (first {res['window']}) -> "
              f"{res['last']:.4f} (last {res['window']}), ratio {res['ratio_last_first']:.3f}, max {res['max_loss']:.3f}, "
              f"finite {res['finite']}, non-positive SSIM batches {res['nonpositive_ssim']} "
              f"[{res['seconds']:.1f} s, {res['device']}]")
    return 0


def _cli_side_by_side(args) -> int:
    from hinas.bench.released import reference_side_by_side
    res = reference_side_by_side(args.code, iterations=args.iterations, batch=args.batch, patch=args.patch,
                                 f=args.f, seed=args.seed, device=args.device, data_root=args.data_root,
                                 max_images=args.max_images)
    if args.out:
        _write_report(args.out, res)
    if args.json:
        print_json(res)
    else:
        for r in res["trace"]:
            print(f"{r['iteration']:4d}  hinas {r['hinas']:.4f}  released {r['released']:.4f}  "
                  f"SSIM {r['hinas_ssim']:.3f} / {r['released_ssim']:.3f}")
        print(f"initial outputs differ by {res['initial_output_max_abs_diff']:.2e}; losses agree to "
              f"{res['max_loss_diff_before_it']} before iteration {res['first_nonpositive_ssim_iteration']} "
              f"(first SSIM <= 0) [{res['seconds']:.1f} s, {res['device']}]")
    return 0


def _cli_gpu_speed(args) -> int:
    from hinas.space.genotype import Genotype, random_genotype

    if not str(args.device).startswith("cuda"):
        raise HinasError(f"--device {args.device}: hinas bench gpu-speed measures CUDA steps; use --device cuda")
    genotype = Genotype.load(args.genotype) if args.genotype else random_genotype("denoise", seed=0)
    if args.steps < 1 or args.search_steps < 1:
        raise HinasError("--steps and --search-steps must be at least 1")
    res = gpu_speed(genotype, code=args.code, device=args.device, steps=args.steps, search_steps=args.search_steps)
    if args.equivalence:
        res["equivalence"] = fast_path_equivalence(genotype, device=args.device)
        res["equivalence_tf32"] = fast_path_equivalence(genotype, device=args.device, tf32=True)
    res["genotype"] = {"file": args.genotype, "architecture": genotype.to_dict()}
    if args.out:
        _write_report(args.out, res)
    if args.json:
        print_json(res)
    else:
        for part, key in (("train", "step_seconds"), ("search", "weight_step_seconds")):
            rel = res[part].get("released")
            if rel:
                print(f"{part:6s} released code            {rel[key] * 1e3:9.2f} ms")
            for name, r in res[part]["variants"].items():
                vs = f"x{r['speedup_vs_released']:.2f} vs released" if r["speedup_vs_released"] else ""
                print(f"{part:6s} {name:26s} {r[key] * 1e3:9.2f} ms  x{r['speedup_vs_eager']:.2f} vs eager  {vs}")
        print(f"recommended fp32 levers: {res['recommended']['variant']}")
    return 0


def _cli_gpu_levers(args) -> int:
    from hinas.safeio import load_json_file

    report = load_json_file(args.report, "gpu-speed report")
    if not isinstance(report, dict) or not {"train", "search", "provenance"} <= set(report):
        raise HinasError(f"{args.report}: not a gpu-speed report (a JSON object with train, search and provenance, "
                         f"as hinas bench gpu-speed --out writes)")
    if args.if_current and not report_is_current(report):
        print(f"{args.report}: measured other step code than this tree's (or without --equivalence); "
              f"run hinas bench gpu-speed --equivalence again", file=sys.stderr)
        return 1
    levers = campaign_levers(report)
    print(" ".join(f"--set {k}={str(v).lower()}" for k, v in levers.items()))
    return 0


def _cli_grad_scope(args) -> int:
    from hinas.engine.common import check_device

    check_device(args.device)
    if args.repeats < 1:
        raise HinasError("--repeats must be at least 1")
    res = gradient_scope(profile=args.profile, task=args.task, device=args.device, repeats=args.repeats)
    if args.out:
        _write_report(args.out, res)
    if args.json:
        print_json(res)
    else:
        for name, sec in res["seconds"].items():
            print(f"{name:45s} {sec:.3f} s")
        print(f"architecture step x{res['architecture_step_speedup']:.2f}, weight step x{res['weight_step_speedup']:.2f} "
              f"against computing every gradient")
    return 0


def _write_report(path, res: dict) -> None:
    """A benchmark's JSON at ``--out`` (its folder made), written atomically."""
    from hinas.safeio import atomic_write_text

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(res, indent=1) + "\n")
