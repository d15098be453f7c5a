"""Model commands: ``hinas describe`` (size and FLOPs of a genotype's network), ``hinas draw``."""

from __future__ import annotations

from pathlib import Path

from hinas.cli import PathArg
from hinas.errors import HinasError
from hinas.safeio import quote

# FLOPs are counted by running the network once on a zero image: bound what that may allocate
MAX_SIDE = 4096
MAX_PIXELS = 1024 * 1024


def register_cli(subparsers) -> None:
    d = subparsers.add_parser("describe", help="parameters and FLOPs of the network a genotype defines")
    d.add_argument("genotype", metavar="GENOTYPE", action=PathArg, want="file", missing_ok=True,
                   help="genotype JSON file (written by 'hinas search')")
    d.add_argument("--size", nargs=2, type=int, default=(64, 64), metavar=("H", "W"),
                   help="input size for FLOPs (the LR size for SR; default 64 64)")
    d.add_argument("--f", type=int, default=None, help="channels per node at level 0 (default: 20 dn, 16 SR)")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=_describe)

    r = subparsers.add_parser("draw", help="draw a genotype's cells and width path as SVG (needs graphviz 'dot')")
    r.add_argument("genotype", metavar="GENOTYPE", action=PathArg, want="file", missing_ok=True,
                   help="genotype JSON file")
    r.add_argument("--out", default=".", action=PathArg, want="folder", missing_ok=True,
                   help="output folder (default: .)")
    r.set_defaults(func=_draw)


def describe(genotype_path, size=(64, 64), f=None) -> dict:
    from hinas.space.genotype import Genotype
    from hinas.space.network import build_network, count_flops, count_parameters

    from hinas.space.network_file import check_network_size

    h, w = size
    if min(h, w) < 1 or max(h, w) > MAX_SIDE or h * w > MAX_PIXELS:
        raise HinasError(f"--size must be two positive integers H W with H*W at most {MAX_PIXELS} "
                         f"(e.g. 64 64; FLOPs scale linearly with H*W), got {h} {w}")
    g = Genotype.load(genotype_path)
    check_network_size(g, f, source=f"{quote(genotype_path)} with --f {f}" if f else quote(genotype_path))
    net = build_network(g, f)
    flops = count_flops(net, tuple(size), g.in_channels)
    return {
        "params": count_parameters(net),
        "flops": flops["flops"],
        "macs": flops["macs"],
        "task": g.task,
        "scale": g.scale,
        "f": net.f,
        "size": list(size),
        "path": g.path,
        "op_counts": g.op_counts(),
    }


def _describe(args) -> int:
    from hinas.cli import print_json

    info = describe(args.genotype, args.size, args.f)
    if args.json:
        print_json(info)
    else:
        print(f"{args.genotype}: {info['task']} network, {info['params'] / 1e6:.3f} M parameters, "
              f"{info['flops'] / 1e9:.3f} GFLOPs at {args.size[0]}x{args.size[1]}, path {info['path']}")
    return 0


def _draw(args) -> int:
    import shutil

    from hinas.space.genotype import Genotype
    from hinas.viz import draw_cell, draw_path

    if shutil.which("dot") is None:
        raise HinasError("graphviz 'dot' is not installed; install it (Debian: apt-get install graphviz) or run 'make setup'")
    g = Genotype.load(args.genotype)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.genotype).stem
    written = []
    for layer in range(g.layers):
        p = out / f"{stem}_cell{layer}.svg"
        p.write_bytes(draw_cell(g, layer).pipe(format="svg"))
        written.append(p)
    p = out / f"{stem}_path.svg"
    p.write_bytes(draw_path(g).pipe(format="svg"))
    written.append(p)
    for p in written:
        print(p)
    return 0
