"""``hinas export``: a trained network as an ONNX model, checked against PyTorch.

    hinas export --weights runs/t1 --format onnx --out dn50.onnx --json

The model reads ``input`` (float32, N x C x H x W, values in [0, 1]; C = 1 for the grey
denoisers, 3 for SR) and writes ``output`` (N x C x H x W, or N x 3 x sH x sW for SR x s);
batch, height and width are dynamic. After writing, the command runs the file in
onnxruntime on a random input of a *different* size from the one traced and compares it with
the PyTorch network: ``max_abs_diff`` in the JSON; above :data:`MAX_ABS_DIFF` the file is not
kept and the command exits 2. Without onnxruntime (``pip install 'hinas[export]'``) the file is
written unchecked and the output says so.

The exporter is torch's TorchScript-based one (fast, no extra package); ``--dynamo`` uses the
``torch.export`` one (needs ``onnxscript``). SR networks need opset >= 11 (bicubic upsampling).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path

from hinas.errors import HinasError

__all__ = ["export_onnx", "check_onnx", "MAX_ABS_DIFF", "DEFAULT_OPSET", "MIN_OPSET"]

MAX_ABS_DIFF = 1e-4
DEFAULT_OPSET = 17
MIN_OPSET = 11  # aten::upsample_bicubic2d (the SR skip) exists from opset 11
TRACE_SIZE = (48, 48)
CHECK_SIZE = (37, 53)  # odd, non-square, not the traced size: proves the dynamic axes


def export_onnx(weights, out, *, opset: int = DEFAULT_OPSET, dynamo: bool = False, force: bool = False,
                check: bool = True, seed: int = 0) -> dict:
    """Export the network of a ``hinas train`` run folder to ONNX at ``out``; see the module doc."""
    import torch

    from hinas.space.network_file import load_trained

    out = Path(out)
    if opset < MIN_OPSET:
        raise HinasError(f"--opset {opset} is too old: the networks need opset >= {MIN_OPSET} "
                         f"(bicubic upsampling in SR); use --opset {DEFAULT_OPSET}")
    if out.exists() and not force:
        raise HinasError(f"{out} exists; pass --force to overwrite or choose another --out")
    if out.suffix.lower() != ".onnx":
        raise HinasError(f"--out {out}: an ONNX file name ends in .onnx")
    model, spec = load_trained(weights, device="cpu")
    channels = int(spec.get("in_channels") or (1 if spec["task"] == "denoise" else 3))
    example = torch.rand(1, channels, *TRACE_SIZE, generator=torch.Generator().manual_seed(seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    try:
        _write(model, example, tmp, opset, dynamo)
        _add_metadata(tmp, spec)
        result = {"weights": str(weights), "out": str(out), "format": "onnx", "opset": opset,
                  "exporter": "dynamo" if dynamo else "torchscript", "task": spec["task"], "scale": spec.get("scale"),
                  "input": {"name": "input", "shape": ["batch", channels, "height", "width"], "range": [0, 1]},
                  "output": {"name": "output",
                             "shape": ["batch", 3 if spec["task"] == "sr" else channels,
                                       f"{spec['scale']}*height" if spec["task"] == "sr" else "height",
                                       f"{spec['scale']}*width" if spec["task"] == "sr" else "width"]}}
        result.update(check_onnx(model, tmp, channels, seed=seed) if check else
                      {"checked": False, "max_abs_diff": None, "note": "not checked (--no-check)"})
        if result["max_abs_diff"] is not None and not result["max_abs_diff"] <= MAX_ABS_DIFF:
            raise HinasError(f"{out}: the ONNX model differs from the PyTorch network by "
                             f"{result['max_abs_diff']:.3g} (> {MAX_ABS_DIFF:g}); not written. Try another --opset "
                             f"or {'the default exporter' if dynamo else '--dynamo'}")
        tmp.replace(out)
    finally:
        if tmp.exists():
            tmp.unlink()
    result["bytes"] = out.stat().st_size
    return result


def _write(model, example, path: Path, opset: int, dynamo: bool) -> None:
    import torch

    try:
        # stdout carries only the command's answer (--json): the exporter's chatter goes to stderr
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            if dynamo:
                dim = torch.export.Dim
                torch.onnx.export(model, (example,), str(path), dynamo=True, opset_version=opset,
                                  input_names=["input"], output_names=["output"],
                                  dynamic_shapes={"x": {0: dim("batch", min=1), 2: dim("height", min=4),
                                                        3: dim("width", min=4)}})
            else:
                torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                                  input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                                "output": {0: "batch", 2: "out_height", 3: "out_width"}})
    except ModuleNotFoundError as exc:
        raise HinasError(f"ONNX export needs the '{exc.name}' package: pip install 'hinas[export]' "
                         f"(onnx, onnxruntime, onnxscript)") from None
    except Exception as exc:  # the exporter's own errors are long; keep the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        if "not installed" in first:
            raise HinasError(f"ONNX export needs the optional packages: pip install 'hinas[export]' ({first})") from None
        raise HinasError(f"ONNX export failed at opset {opset}: {first}") from None


def _add_metadata(path: Path, spec: dict) -> None:
    """Record task, scale and input range in the model's metadata (when ``onnx`` is installed)."""
    try:
        import onnx
    except ImportError:
        return
    import json

    m = onnx.load(str(path))
    meta = {"producer": "hinas", "task": spec["task"], "scale": json.dumps(spec.get("scale")),
            "input_range": "[0, 1]", "model": spec.get("model", "hinas")}
    for k, v in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.save(m, str(path))


def check_onnx(model, path, channels: int, *, seed: int = 0, size=CHECK_SIZE) -> dict:
    """Run ``path`` in onnxruntime and the PyTorch ``model`` on one random input; compare."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {"checked": False, "max_abs_diff": None,
                "note": "onnxruntime is not installed: the file was not checked (pip install 'hinas[export]')"}
    import numpy as np
    import torch

    x = torch.rand(1, channels, *size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        ref = model(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    if got.shape != ref.shape:
        return {"checked": True, "max_abs_diff": float("inf"), "check_input": list(x.shape),
                "note": f"output shape {list(got.shape)} != PyTorch {list(ref.shape)}"}
    return {"checked": True, "max_abs_diff": float(np.abs(got.astype(np.float64) - ref).max()),
            "check_input": list(x.shape), "onnxruntime": ort.__version__}


# ------------------------------------------------------------------------------ command line
