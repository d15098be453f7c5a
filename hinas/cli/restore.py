"""``hinas restore``: the command line of :mod:`hinas.deploy.restore` (run a trained network on your images).

    hinas restore photo.png --weights runs/t1 --out restored/          # -> restored/photo.png
    hinas restore big.tif --weights runs/sr2 --out big_x2.png --tile 256 --overlap 32
    hinas restore clean.png --weights runs/dn50 --out demo/ --add-noise 50 --seed 0
"""

from __future__ import annotations

import argparse
import sys


def register_cli(subparsers) -> None:
    from hinas.cli import PathArg

    p = subparsers.add_parser(
        "restore", help="denoise or super-resolve your own images with a trained network",
        description="Run the network of a 'hinas train' run folder on image files or folders. Denoising keeps the "
                    "size, SR multiplies it by the network's scale. Outputs are PNG unless --out names a file.",
        epilog="examples:\n"
               "  hinas restore photo.png --weights runs/t1 --out restored/\n"
               "  hinas restore big.tif --weights runs/sr2 --out big_x2.png --tile 256 --overlap 32\n"
               "  hinas restore clean.png --weights runs/dn50 --out demo/ --add-noise 50 --seed 0",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", action=PathArg, want="any",
                   help="image files (PNG, JPEG, TIFF, ...) or folders of them")
    p.add_argument("--weights", required=True, metavar="DIR", action=PathArg, want="folder", missing_ok=True,
                   help="run folder of 'hinas train' (network.json + weights)")
    p.add_argument("--out", required=True, metavar="PATH", action=PathArg, want="any", missing_ok=True,
                   help="output folder (one PNG per input), or a file name for a single input")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sigma", type=float, default=None,
                   help="noise level of the inputs (0-255); checked against the level the network was trained for")
    g.add_argument("--scale", type=int, default=None, help="SR factor; must match the network's")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="process N x N tiles (large images; default: the whole image at once)")
    p.add_argument("--overlap", type=int, default=32, metavar="P", help="tile overlap in input pixels (default 32)")
    p.add_argument("--add-noise", type=float, default=None, metavar="S",
                   help="demo: add Gaussian noise of level S (0-255) first; also writes NAME_noisy.png")
    p.add_argument("--seed", type=int, default=0, help="seed of --add-noise (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files (never an input)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object describing what was written")
    p.set_defaults(func=_restore_command)


def _restore_command(args) -> int:
    from hinas.cli import print_json
    from hinas.deploy.restore import restore_files

    res = restore_files(args.weights, args.inputs, args.out, sigma=args.sigma, scale=args.scale, tile=args.tile,
                        overlap=args.overlap, add_noise=args.add_noise, seed=args.seed, force=args.force,
                        device=args.device, progress=not args.quiet)
    for note in res["notes"]:
        print(f"hinas: note: {note}", file=sys.stderr)
    if args.json:
        print_json(res)
    else:
        for r in res["images"]:
            print(f"{r['input']} -> {r['output']} ({r['size_out'][0]}x{r['size_out'][1]})")
    return 0
