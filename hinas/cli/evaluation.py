"""``hinas eval``: a baseline (bicubic, BM3D, the noisy input) or trained weights on a dataset,
under a named metric protocol (:mod:`hinas.eval.evaluation`)."""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path

from hinas.cli import PathArg, print_json
from hinas.engine.common import check_device
from hinas.errors import HinasError
from hinas.eval.evaluation import (BM3D_PROFILES, EVAL_SCALES, PROTOCOLS, bicubic_restore, bm3d_restore, default_dataset,
                              evaluate, evaluate_run)
from hinas.safeio import finite_number, names_file, quote


def evaluate_weights(args) -> dict:
    """``hinas eval --weights DIR``."""
    if args.method is not None:
        raise HinasError("give either a baseline method or --weights, not both")
    if args.limit is not None and args.limit < 1:
        raise HinasError(f"--limit must be at least 1, got {args.limit}")
    if args.sigma is not None:
        finite_number(args.sigma, "--sigma", lo=0, hi=255, lo_open=True)
    return evaluate_run(args.weights, args.dataset, sigma=args.sigma, scale=args.scale, protocol=args.protocol,
                        data_root=args.data_root, device=args.device, limit=args.limit,
                        progress=sys.stderr.isatty())  # per-image lines on a terminal


def add_eval_arguments(parser) -> None:
    """Arguments of ``hinas eval`` (shared with the engine's ``evaluate_weights``)."""
    parser.add_argument("method", nargs="?", choices=["bicubic", "bm3d", "noisy"], default=None,
                        help="baseline to evaluate: bicubic (SR), bm3d (denoising) or noisy (the noisy input "
                             "itself, the floor a denoiser must clear); omit with --weights")
    parser.add_argument("--weights", default=None, metavar="DIR", action=PathArg, want="folder", missing_ok=True,
                        help="evaluate a trained run folder")
    parser.add_argument("--dataset", default=None, action=PathArg, want="name", what="dataset name or folder",
                        help="dataset name (Set5, Set14, B100, Urban100, Manga109, BSDS500-test, BSD68, Set12, "
                             "embedded-test, ...) or a folder of images; default: the task's standard test set")
    parser.add_argument("--scale", type=int, default=None, help="SR factor (2, 3 or 4)")
    parser.add_argument("--sigma", type=float, default=None, help="denoising noise level on the 0-255 scale")
    parser.add_argument("--data-root", default=None, metavar="DIR", action=PathArg, want="folder",
                        help="folder holding the datasets (default: $HINAS_DATA, else the embedded images)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default="standard",
                        help="metric protocol (default: standard; hinas-reference = the released code)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (sorted)")
    parser.add_argument("--device", default="cpu", help="torch device for networks (default: cpu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--per-image", action="store_true", help="include per-image scores in the JSON")
    parser.add_argument("--save", default=None, metavar="FILE", action=PathArg, want="file", missing_ok=True,
                        help="also write the full result (per image, with provenance) to this JSON file")
    parser.add_argument("--force", action="store_true", help="let --save overwrite an existing file")


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a baseline (bicubic, bm3d, noisy) or trained weights on a dataset",
                              description="Evaluate a baseline or a trained network. Protocols: " + "; ".join(
                                  f"{k}: {v['summary']}" for k, v in PROTOCOLS.items()))
    add_eval_arguments(p)
    p.set_defaults(func=_eval_command)
    register_ladder_cli(subparsers)


def run_eval(args) -> dict:
    """Run ``hinas eval`` for a baseline from parsed ``args``; returns the result dict."""
    if args.method is None:
        raise HinasError("give a method (bicubic, bm3d or noisy) or --weights DIR")
    if args.limit is not None and args.limit < 1:
        raise HinasError(f"--limit must be at least 1, got {args.limit}")
    if args.method == "bicubic":
        if args.sigma is not None:
            raise HinasError("bicubic is the SR baseline: use --scale, not --sigma (bm3d is the denoising one)")
        if args.scale is None:
            raise HinasError("bicubic needs --scale (2, 3 or 4)")
        if args.scale not in EVAL_SCALES:
            raise HinasError(f"--scale must be one of {', '.join(map(str, EVAL_SCALES))}, got {args.scale}")
        task, fn = "sr", bicubic_restore(args.scale)
    else:
        if args.scale is not None:
            raise HinasError(f"{args.method} is a denoising baseline: use --sigma, not --scale (bicubic is the SR one)")
        if args.sigma is None:
            raise HinasError(f"{args.method} needs --sigma (noise level on the 0-255 scale, e.g. 50)")
        finite_number(args.sigma, "--sigma", lo=0, hi=255, lo_open=True)
        # noisy: the identity, scored under the same protocol and noise draws as any denoiser
        task, fn = "denoise", (bm3d_restore(args.sigma) if args.method == "bm3d" else (lambda x: x))
    dataset = args.dataset or default_dataset(task, args.data_root)
    res = evaluate(fn, dataset, task, sigma=args.sigma, scale=args.scale, protocol=args.protocol,
                   device=args.device, data_root=args.data_root, limit=args.limit,
                   progress=sys.stderr.isatty())  # per-image lines on a terminal (BM3D takes minutes)
    res["method"] = args.method
    return res


def _summary(res: dict) -> dict:
    head = {"dataset": res.get("dataset"), "scale": res.get("scale"), "sigma": res.get("sigma"),
            "images": res.get("images"), "psnr": res.get("psnr"), "ssim": res.get("ssim")}
    out = dict(head)
    for k, v in res.items():
        if k not in out and k != "per_image":
            out[k] = v
    return out


def _write_result(path: Path, text: str, force: bool) -> None:
    """Write ``path`` atomically through a temp file of its own (two evaluations never share one);
    without ``force`` the file is created exclusively, so a file that appeared meanwhile is kept."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with names_file(path), os.fdopen(fd, "w") as fh:
            fh.write(text)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise HinasError(f"{quote(path)}: appeared while evaluating; pass --force to overwrite it, "
                                 f"or choose another --save") from None
            except OSError:  # a file system without hard links: check, then rename
                if path.exists():
                    raise HinasError(f"{quote(path)}: appeared while evaluating; pass --force to overwrite "
                                     f"it, or choose another --save") from None
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_file_target(path: Path, flag: str, example: str) -> None:
    """Refuse, before any work, a ``flag`` file that names a folder or lies under a file."""
    if path.is_dir():
        raise HinasError(f"{quote(path)}: {flag} names a folder; give a file name (e.g. {example})")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise HinasError(f"{quote(blocker)}: is a file, so {flag} {quote(path)} cannot be written; "
                         f"choose another {flag}")


def _eval_command(args) -> int:
    check_device(args.device)
    save = Path(args.save) if args.save else None
    if save is not None:  # refuse before minutes of evaluation, not after
        check_file_target(save, "--save", "result.json")
        if save.exists() and not getattr(args, "force", False):
            raise HinasError(f"{quote(save)}: already exists; pass --force to overwrite it, or choose another --save")
    res = evaluate_weights(args) if args.weights is not None else run_eval(args)
    if save is not None:
        full = dict(res)
        full["provenance"] = {"command": "hinas " + " ".join(sys.argv[1:]) if sys.argv else "hinas eval",
                              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                              "device": str(getattr(args, "device", "cpu"))}
        save.parent.mkdir(parents=True, exist_ok=True)
        _write_result(save, json.dumps(full, indent=1) + "\n", force=getattr(args, "force", False))
    if args.json:
        print_json(res if args.per_image else _summary(res))
    else:
        what = res.get("method") or args.weights
        setting = f"x{res['scale']}" if res.get("scale") else f"sigma {res.get('sigma'):g}"
        line = (f"{what} on {res.get('dataset')} {setting} ({res.get('protocol')}): PSNR {res['psnr']:.2f} dB, "
                f"SSIM {res['ssim']:.4f} over {res.get('images')} images")
        if "seconds" in res:
            line += f" [{res['seconds']:.1f} s]"
        if res.get("embedded"):
            line += " - embedded images, NOT comparable with the paper"
        print(line)
    return 0


# ------------------------------------------------------------------------------ protocol-ladder

def register_ladder_cli(subparsers) -> None:
    from hinas.eval.protocol_ladder import INPUT_STEPS, PROTOCOL_STEPS

    p = subparsers.add_parser(
        "protocol-ladder", help="what each difference between the denoising protocols is worth, step by step",
        description="Score one denoiser on the same images under protocols that differ by one thing each, from "
                    "'standard' to 'hinas-reference' (" + "; ".join(f"{s.key}: {s.label}" for s in PROTOCOL_STEPS)
                    + "), optionally with the noisy input clipped/quantised (" + "; ".join(
                        f"{s.key}: {s.label}" for s in INPUT_STEPS) + "). The file is saved after every image; "
                    "the same command continues it.")
    p.add_argument("method", nargs="?", choices=["bm3d", "noisy"], default=None,
                   help="a baseline (bm3d, or noisy: the input itself); omit with --weights")
    p.add_argument("--weights", default=None, metavar="DIR", action=PathArg, want="folder", missing_ok=True,
                   help="a trained denoising run folder")
    p.add_argument("--sigma", type=float, required=True, help="noise level on the 0-255 scale")
    p.add_argument("--dataset", default=None, action=PathArg, want="name", what="dataset name or folder",
                   help="dataset name or folder (default: BSDS500-test)")
    p.add_argument("--data-root", default=None, metavar="DIR", action=PathArg, want="folder",
                   help="datasets folder (default: $HINAS_DATA)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N images (sorted); a later call with a larger N continues the same file")
    p.add_argument("--input-steps", action="store_true",
                   help="also score the noisy input clipped to [0, 1], and clipped and rounded to uint8")
    p.add_argument("--steps", default=None, metavar="KEYS",
                   help="comma-separated steps to score (default: every protocol step, plus the input steps with "
                        "--input-steps)")
    p.add_argument("--bm3d-profile", default="np", choices=BM3D_PROFILES,
                   help="the bm3d package's parameter set (default: np)")
    p.add_argument("--device", default="cpu", help="torch device for networks (default: cpu)")
    p.add_argument("--out", required=True, metavar="FILE", action=PathArg, want="file", missing_ok=True,
                   help="the ladder's JSON file (continued if it exists)")
    p.set_defaults(func=_ladder_command)


def _ladder_command(args) -> int:
    from hinas.data.datasets import load_dataset
    from hinas.eval.protocol_ladder import INPUT_STEPS, PROTOCOL_STEPS, STEPS, ladder_identity, run_ladder, step_differences
    from hinas.safeio import atomic_write_text, load_json_file, sha256_file

    check_device(args.device)
    if (args.method is None) == (args.weights is None):
        raise HinasError("give a baseline (bm3d or noisy) or --weights DIR, one of them")
    finite_number(args.sigma, "--sigma", lo=0, hi=255, lo_open=True)
    if args.limit is not None and args.limit < 1:
        raise HinasError(f"--limit must be at least 1, got {args.limit}")
    out = Path(args.out)
    check_file_target(out, "--out", "ladder.json")
    steps = [s.key for s in PROTOCOL_STEPS + (INPUT_STEPS if args.input_steps else ())]
    if args.steps is not None:
        asked = [k.strip() for k in args.steps.split(",") if k.strip()]
        unknown = [k for k in asked if k not in STEPS]
        if unknown or not asked:
            raise HinasError(f"--steps: unknown step {unknown[0] if unknown else '(none given)'!r}; use some of "
                             f"{', '.join(STEPS)}")
        steps = [k for k in STEPS if k in asked]
    if args.weights is not None:
        from hinas.space.network_file import load_trained

        model, spec = load_trained(args.weights, "best", args.device)
        if spec.get("task", "denoise") != "denoise":
            raise HinasError(f"{quote(args.weights)}: an SR network; the protocol ladder is for denoisers")
        restore, method = model, "network"
        setup = {"weights": str(args.weights), "model": spec.get("model"),
                 "weights_sha256": sha256_file(Path(args.weights) / "weights.safetensors")}
    elif args.method == "bm3d":
        restore, method, setup = bm3d_restore(args.sigma, args.bm3d_profile), "bm3d", {"bm3d_profile": args.bm3d_profile}
    else:
        restore, method, setup = (lambda x: x), "noisy", {}
    dataset = load_dataset(args.dataset or default_dataset("denoise", args.data_root), args.data_root,
                           grey=True).limit(args.limit)
    # the images are not part of the identity: a later call with a larger --limit continues the file
    identity = ladder_identity(method, args.sigma, dataset.name, steps, **setup)
    previous = None
    if out.exists():
        previous = load_json_file(out, "protocol ladder")
        theirs = {k: previous.get(k) for k in identity}
        if theirs != identity:
            diff = next(k for k in identity if theirs.get(k) != identity[k])
            raise HinasError(f"{quote(out)}: holds a ladder of another setup ({diff}: {theirs.get(diff)!r}, asked "
                             f"{identity[diff]!r}); choose another --out, or delete the file to start again")
    stamp = {"command": "hinas " + " ".join(sys.argv[1:]) if sys.argv else "hinas protocol-ladder",
             "device": str(args.device)}

    def save(result):
        stamp["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        atomic_write_text(out, json.dumps({**result, "provenance": stamp}, indent=1) + "\n")

    out.parent.mkdir(parents=True, exist_ok=True)
    res = run_ladder(restore, dataset, identity, device=args.device, previous=previous, save=save,
                     progress=sys.stderr.isatty())
    save(res)
    print(f"{method} on {dataset.name}, sigma {args.sigma:g}, {len(res['per_image'])} images -> {quote(out)}")
    for s, v in res["summary"].items():
        print(f"  {s:<20} PSNR {v['psnr']:.3f} dB  SSIM {v['ssim']:.4f}")
    for d in step_differences(res):
        p = d["psnr"]
        print(f"  {d['step']:<20} {p['mean']:+.3f} dB (SE {p['se']:.3f}, up on {p['wins']} of {p['images']} images) "
              f"from {d['from']}")
    return 0
