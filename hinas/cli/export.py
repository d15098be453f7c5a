"""``hinas export``: a trained network as ONNX, checked in onnxruntime (:mod:`hinas.deploy.export`)."""

from __future__ import annotations

import sys

from hinas.deploy import export
from hinas.cli import PathArg, print_json
from hinas.deploy.export import DEFAULT_OPSET, MIN_OPSET, export_onnx


def register_cli(subparsers) -> None:
    import argparse

    p = subparsers.add_parser(
        "export", help="export a trained network to ONNX (dynamic height/width), checked with onnxruntime",
        description=export.__doc__.split("\n\n")[0],
        epilog="example:\n  hinas export --weights runs/t1 --format onnx --out dn50.onnx --json\n"
               "needs: pip install 'hinas[export]'  (onnx, onnxruntime, onnxscript)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, metavar="DIR", action=PathArg, want="folder", missing_ok=True,
                   help="run folder of 'hinas train'")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    p.add_argument("--out", required=True, metavar="FILE", action=PathArg, want="file", missing_ok=True,
                   help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET}; at least {MIN_OPSET})")
    p.add_argument("--dynamo", action="store_true", help="use the torch.export-based exporter (needs onnxscript)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the onnxruntime comparison with PyTorch")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_export_command)


def max_opset(dynamo: bool) -> int:
    """The newest opset torch's exporter writes (the TorchScript one stops earlier than torch.export's)."""
    try:
        from torch.onnx import _constants as c

        return int(c.ONNX_MAX_OPSET if dynamo else c.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except (ImportError, AttributeError):  # another torch: the TorchScript exporter's limit since torch 2.1
        return 20


def _export_command(args) -> int:
    from hinas.errors import HinasError

    top = max_opset(args.dynamo)
    if not MIN_OPSET <= args.opset <= top:  # out of range the exporter prints its whole graph, then fails
        raise HinasError(f"--opset {args.opset}: this torch exports opsets {MIN_OPSET} to {top}"
                         f"{' with --dynamo' if args.dynamo else ' (--dynamo: up to ' + str(max_opset(True)) + ')'}; "
                         f"use --opset {DEFAULT_OPSET}")
    res = export_onnx(args.weights, args.out, opset=args.opset, dynamo=args.dynamo, force=args.force,
                      check=args.check)
    if args.json:
        print_json(res)
        return 0
    if res["checked"]:
        print(f"{res['out']}: ONNX opset {res['opset']}, {res['bytes']} bytes; onnxruntime vs PyTorch on "
              f"{'x'.join(map(str, res['check_input']))}: max |diff| = {res['max_abs_diff']:.3g}")
    else:
        print(f"{res['out']}: ONNX opset {res['opset']}, {res['bytes']} bytes")
        print(f"hinas: note: {res['note']}", file=sys.stderr)
    return 0
