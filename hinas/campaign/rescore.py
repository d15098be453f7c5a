"""What ``hinas verify`` and ``hinas campaign seal`` recompute: networks from their files, every
stored score from the verifier's own data. Nothing a summary says about where its inputs are is
used.

* **Data**: only the verifier's own data root (:func:`trusted_data_root`: ``--data-root``, else
  ``$HINAS_DATA``, else none, which holds only the embedded photos). A dataset is a registered
  name (:data:`hinas.data.datasets.DATASETS` or ``embedded-*``), never a folder; an evaluation
  whose dataset needs a data root the verifier lacks is :class:`NotRescored`, never scored on the
  summary's ``data_root`` (that folder is only named in a note).
* **Networks**, by the item's files, whatever its summary's ``kind`` says
  (:func:`file_checks`): every folder holding ``network.json`` is rebuilt from it with its
  ``weights*.safetensors`` (finite, fitting), every other ``*.safetensors`` loads finite, every
  ``genotype*.json`` parses, a HiNAS network's ``genotype.json`` is its ``network.json``'s, a
  search's alpha/beta CSVs read and show the movement its summary claims, and the summary's
  ``params`` and ``flops`` are the network's.
* **Evaluations**: every field is checked before any work (:func:`evaluation_problem`: a
  malformed one is :class:`Malformed`, that item's fault); the per-image names are the first
  images of the dataset, in order; the first N images are scored again on the CPU in fp32 and
  each stored PSNR and SSIM must be within :data:`TOLERANCE_DB` / :data:`TOLERANCE_SSIM`.
"""

from __future__ import annotations

import math
from pathlib import Path

from hinas.errors import DataError, HinasError
from hinas.safeio import is_finite_number

# |stored - recomputed| per image: an fp32 result re-evaluated on the CPU may differ from the GPU's
# by float rounding (a few uint8 levels in the standard protocol: ~1e-3 dB, ~1e-5 SSIM); a bf16
# result is re-evaluated in fp32, so its bound is the bf16 effect itself (seen: 0.014 dB, 6e-4).
TOLERANCE_DB = {"fp32": 0.05, "bf16": 0.5}
TOLERANCE_SSIM = {"fp32": 0.002, "bf16": 0.02}
NETWORK_FILE = "network.json"
WEIGHTS = {"weights.safetensors": "best", "weights_final.safetensors": "final"}
MAX_GRID = 64  # layers or levels of a search grid a summary may state (the paper: 12 and 4)
FLOPS_SIDES = (8, 256)  # a stored 'flops_input' is a small square or rectangle; never a memory bomb


class Malformed(HinasError):
    """A stored field that hinas cannot have written: the item holding it is corrupt."""


class NotRescored(DataError):
    """The verifier's own data cannot score this evaluation (no data root, dataset or image)."""


def show(value, limit: int = 60) -> str:
    """A stored value as one short printable token (it may be anything a forger wrote)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def trusted_data_root(data_root=None) -> Path | None:
    """The verifier's data root: ``data_root``, else ``$HINAS_DATA``, else None (the embedded photos
    only). A path that is not a folder is a bad call (:class:`DataError`, exit 2)."""
    from hinas.data.datasets import resolve_data_root

    return resolve_data_root(data_root)


def _realpath(name: str) -> str | None:
    import os

    try:
        return os.path.realpath(name)
    except (OSError, ValueError):  # a NUL byte, a loop: not the verifier's root either way
        return None


def data_root_note(summary: dict, root: Path | None) -> str | None:
    """A note when the summary's evaluations name a data root other than the verifier's."""
    named = sorted({str(ev["data_root"]) for ev in summary.get("evaluations") or []
                    if isinstance(ev, dict) and ev.get("data_root") not in (None, "")})
    other = [n for n in named if root is None or _realpath(n) != str(root)]
    if not other:
        return None
    mine = str(root) if root is not None else "none (no --data-root or HINAS_DATA: the embedded photos only)"
    return (f"its summary names the data root {', '.join(show(n, 300) for n in other)}; never used: scored on the "
            f"verifier's own data root, {mine}")


# ---------------------------------------------------------------------------------------------
# networks, by their files
# ---------------------------------------------------------------------------------------------
SUPERNET_FILE = "supernet.safetensors"  # a finished search's supernet weights (checked finite; not a network)


def holds_network(files: list[str]) -> bool:
    """The item's files hold a network (a description or weights), whatever its summary says; a
    search's :data:`SUPERNET_FILE` is the supernet, not a trained network."""
    return any(Path(f).name == NETWORK_FILE or (f.endswith(".safetensors") and f != SUPERNET_FILE) for f in files)


def _finite_tensors(path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # a truncated or forged header: safetensors raises its own errors
        raise HinasError(f"{path.name}: not a safetensors file that loads ({exc.__class__.__name__})") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise HinasError(f"{path.name}: {len(bad)} tensor(s) hold NaN or infinite values ({show(bad[0])})")


def _genotype_problem(folder: Path, files: list[str], spec) -> str | None:
    from hinas.space.genotype import Genotype

    for rel in files:
        if Path(rel).name.startswith("genotype") and rel.endswith(".json"):
            g = Genotype.load(folder / rel)  # a GenotypeError names the file
            if rel == "genotype.json" and isinstance(spec, dict) and spec.get("model") == "hinas" \
                    and g.architecture() != Genotype.from_dict(spec.get("genotype")).architecture():
                return f"genotype.json is not the genotype of its {NETWORK_FILE}"
    return None


def count_problems(summary: dict, model, spec: dict, where: str = "its") -> list[str]:
    """The summary's ``params`` and ``flops`` (when it states them) against the network itself."""
    from hinas.space.network import count_flops, count_parameters

    problems = []
    params = summary.get("params")
    if "params" in summary and not isinstance(params, dict):  # a search states its supernet's as a mapping
        actual = count_parameters(model)
        if params != actual:
            problems.append(f"'params' is {show(params)} but {where} network has {actual} parameters")
    if "flops" in summary:
        size = summary.get("flops_input", [64, 64])
        if not (isinstance(size, list) and len(size) == 2 and all(
                isinstance(s, int) and not isinstance(s, bool) and FLOPS_SIDES[0] <= s <= FLOPS_SIDES[1]
                for s in size)):
            problems.append(f"'flops_input' is {show(size)}: not an input size hinas counts FLOPs on")
        else:
            in_ch = spec.get("in_channels", 1 if spec.get("task", "denoise") == "denoise" else 3)
            actual = count_flops(model, tuple(size), in_ch)["flops"]
            if summary["flops"] != actual:
                problems.append(f"'flops' is {show(summary['flops'])} but {where} network does {actual} on "
                                f"{size[0]}x{size[1]}")
    return problems


def _movement_problem(folder: Path, files: list[str], summary) -> str | None:
    """A search's alpha/beta CSVs read as its weights, and the movement its summary claims (what
    ``campaign status`` and the book trust: searched or not) is the one they show."""
    from hinas.engine.movement import movement_from_csv

    if not {"alpha.csv", "beta.csv"} <= set(files):
        return None
    summary = summary if isinstance(summary, dict) else {}
    config = summary.get("config") if isinstance(summary.get("config"), dict) else {}
    grid = [config.get(k) for k in ("layers", "levels")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_GRID for n in grid):
        return f"its summary's config states no search grid (layers, levels: {show(grid)}) to read alpha/beta with"
    try:
        measured = movement_from_csv(folder, *grid)
    except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError):
        return "alpha.csv and beta.csv do not read as a search's architecture weights"
    engine = summary.get("engine_summary") if isinstance(summary.get("engine_summary"), dict) else {}
    for claim in (summary.get("movement"), engine.get("movement")):
        if isinstance(claim, dict) and "moved" in claim and claim["moved"] is not measured["moved"]:
            return (f"its summary says the search {'moved' if claim['moved'] else 'did not move'} but its "
                    f"alpha.csv and beta.csv say {'it moved' if measured['moved'] else 'it did not'}")
    return None


def file_checks(folder: Path, files: list[str], summary: dict | None):
    """``(network or None, problems)`` of an item's files, whatever its summary's kind: every
    network folder rebuilt from its description and weights (finite, fitting), every
    ``*.safetensors`` finite, every genotype parsed (a HiNAS network's ``genotype.json`` its own),
    a search's alpha/beta CSVs read and its claimed movement theirs, and the summary's
    ``params``/``flops`` those of the item's own network. The network is ``(model, spec)`` of the
    item folder's own ``network.json`` + ``weights.safetensors``."""
    from hinas.space.network_file import load_trained
    from hinas.safeio import load_json_file, one_line

    problems, network, used = [], None, set()
    try:
        for rel in sorted(f for f in files if Path(f).name == NETWORK_FILE):
            sub = (folder / rel).parent
            prefix = "" if sub == folder else f"{Path(rel).parent.as_posix()}/"
            present = [w for w in WEIGHTS if f"{prefix}{w}" in files]
            if not present:
                problems.append(f"{rel} without weights.safetensors beside it: a network that cannot be checked")
            for w in present:
                model, spec = load_trained(sub, WEIGHTS[w], "cpu")  # finite and fitting, or a HinasError
                used.add(f"{prefix}{w}")
                if sub == folder and w == "weights.safetensors":
                    network = (model, spec)
        for rel in sorted(f for f in files if f.endswith(".safetensors")):
            if rel not in used:
                if Path(rel).name in WEIGHTS:
                    problems.append(f"{rel} without {NETWORK_FILE} beside it: weights of no described network")
                _finite_tensors(folder / rel)
        spec = network[1] if network else (load_json_file(folder / NETWORK_FILE, "network description")
                                           if NETWORK_FILE in files else None)
        found = (_genotype_problem(folder, files, spec), _movement_problem(folder, files, summary))
        problems += [r for r in found if r]
        if network is not None and isinstance(summary, dict):
            problems += count_problems(summary, *network)
    except (HinasError, RuntimeError, ValueError, TypeError, KeyError, OverflowError) as exc:
        problems.append(one_line(str(exc) or exc.__class__.__name__))
        network = None
    return (None if problems else network), problems


# ---------------------------------------------------------------------------------------------
# evaluations: every field, then the scores
# ---------------------------------------------------------------------------------------------
def evaluation_label(ev: dict) -> str:
    """``dataset/protocol/precision``, the key of the summary's ``metrics``, as one printable line."""
    from hinas.safeio import one_line

    return one_line(f"{ev.get('dataset')}/{ev.get('protocol')}/{ev.get('precision', 'fp32')}")


def evaluations_problems(summary: dict, network) -> list[str]:
    """Every field of every stored evaluation, and the summary's ``params``/``flops``, against the
    network it names (``(model, spec)``): checked before any image is scored."""
    model, spec = network
    found = [r for r in (evaluation_problem(ev, spec) for ev in summary.get("evaluations") or []) if r]
    return found or count_problems(summary, model, spec, "its")


def evaluation_problem(ev, spec: dict) -> str | None:
    """Why one stored evaluation cannot be what hinas wrote for this network (None: it can)."""
    from hinas.data.datasets import DATASETS, EMBEDDED_SPLIT, canonical_name
    from hinas.eval.evaluation import EVAL_SCALES, PROTOCOLS

    if not isinstance(ev, dict):
        return "an evaluation that is not a mapping"
    from hinas.data.sampling import crop_of

    label = evaluation_label(ev)
    dataset = ev.get("dataset")
    if not isinstance(dataset, str) or canonical_name(crop_of(dataset)[0]) not in {*DATASETS, *EMBEDDED_SPLIT}:
        return f"{show(label)}: dataset {show(dataset)} is not a registered dataset (never a folder)"
    if not isinstance(ev.get("protocol"), str) or ev["protocol"] not in PROTOCOLS:
        return f"{label}: protocol {show(ev.get('protocol'))} is not one of {', '.join(PROTOCOLS)}"
    if not isinstance(ev.get("precision", "fp32"), str) or ev.get("precision", "fp32") not in TOLERANCE_DB:
        return f"{label}: precision {show(ev.get('precision'))} is not one of {', '.join(TOLERANCE_DB)}"
    task = spec.get("task", "denoise")
    if ev.get("task") != task:
        return f"{label}: task {show(ev.get('task'))} is not its network's ({task})"
    if task == "denoise":
        sigma = ev.get("sigma")
        if not is_finite_number(sigma) or not 0 < sigma <= 255:
            return f"{label}: sigma {show(sigma)} is not a noise level in (0, 255]"
        if ev.get("scale") is not None:
            return f"{label}: scale {show(ev.get('scale'))} in a denoising evaluation"
    else:
        scale = ev.get("scale")
        if isinstance(scale, bool) or scale not in EVAL_SCALES or scale != spec.get("scale"):
            return f"{label}: scale {show(scale)} is not its network's (x{spec.get('scale')})"
        if ev.get("sigma") is not None:
            return f"{label}: sigma {show(ev.get('sigma'))} in an SR evaluation"
    per = ev.get("per_image")
    if not isinstance(per, list) or not per:
        return f"{label}: no per-image scores"
    for p in per:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) \
                or not all(is_finite_number(p.get(k)) for k in ("psnr", "ssim")):
            return f"{label}: a per-image score that is not {{name, finite psnr, finite ssim}} ({show(p)})"
    names = [p["name"] for p in per]
    if len(set(names)) != len(names):
        return f"{label}: an image scored twice"
    for key in ("embedded", "comparable_with_paper"):
        if key in ev and not isinstance(ev[key], bool):
            return f"{label}: {key} {show(ev[key])} is not true or false"
    return None


def _gap(a: float, b: float) -> float:
    """|a - b|, infinite when either is not a finite number (never a NaN that compares as small)."""
    return abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf


def _dataset(ev: dict, task: str, root: Path | None):
    """The evaluation's dataset from the verifier's own data root (never the summary's)."""
    from hinas.data.datasets import EMBEDDED_SPLIT, canonical_name, load_dataset
    from hinas.data.sampling import central_crops, crop_of

    name, crop = crop_of(ev["dataset"])  # central crops: the same crops of the verifier's own images
    canon = canonical_name(name)
    if canon not in EMBEDDED_SPLIT and root is None:
        raise NotRescored(f"{evaluation_label(ev)}: not re-scored: {canon} needs a data root of this call "
                          f"(--data-root DIR or HINAS_DATA); the summary's data root is never used")
    try:
        return central_crops(load_dataset(canon, root, grey=(task == "denoise")), crop)
    except DataError as exc:
        raise NotRescored(f"{evaluation_label(ev)}: not re-scored: {exc}") from None


def rescore_evaluation(ev: dict, model, spec: dict, *, images: int | None, root: Path | None) -> dict:
    """Score the first ``images`` images of one (checked) evaluation again on the CPU in fp32; its
    check, with ``match`` False when a stored claim differs. Raises :class:`NotRescored` when the
    verifier's data cannot score it, :class:`Malformed` when the stored scores cannot be these."""
    import torch

    from hinas.eval.evaluation import evaluate
    from hinas.safeio import one_line

    label, task = evaluation_label(ev), spec.get("task", "denoise")
    dataset = _dataset(ev, task, root)
    per = ev["per_image"]
    names = dataset.names
    if [p["name"] for p in per] != names[:len(per)]:
        first = next((i for i, p in enumerate(per) if i >= len(names) or p["name"] != names[i]), len(per))
        have = show(names[first]) if first < len(names) else "none"
        raise Malformed(f"{label}: its {len(per)} per-image names are not the first {len(per)} images of "
                        f"{dataset.name} (image {first + 1}: stored {show(per[first]['name'])}, the data's {have})")
    problems = []
    for key, actual in (("embedded", dataset.embedded), ("comparable_with_paper", dataset.comparable_with_paper)):
        if key in ev and ev[key] != actual:
            problems.append(f"{key} is {show(ev[key])} but {dataset.name} is {actual}")
    stored = per[:images] if images else per
    try:
        with torch.no_grad():
            res = evaluate(model, dataset.limit(len(stored)), task, sigma=ev.get("sigma"), scale=ev.get("scale"),
                           protocol=ev["protocol"], device="cpu")
    except DataError as exc:  # an image of the verifier's own data
        raise NotRescored(f"{label}: not re-scored: {one_line(str(exc))}") from None
    except HinasError as exc:
        raise Malformed(f"{label}: {one_line(str(exc))}") from None
    got = res["per_image"]
    diff_db, diff_ssim = (max(_gap(g[key], s[key]) for g, s in zip(got, stored)) for key in ("psnr", "ssim"))
    precision = ev.get("precision", "fp32")
    tol_db, tol_ssim = TOLERANCE_DB[precision], TOLERANCE_SSIM[precision]
    if not diff_db <= tol_db:
        problems.append(f"PSNR differs by up to {diff_db:.4f} dB (tolerance {tol_db})")
    if not diff_ssim <= tol_ssim:
        problems.append(f"SSIM differs by up to {diff_ssim:.4f} (tolerance {tol_ssim})")
    return {"dataset": ev["dataset"], "protocol": ev["protocol"], "precision": precision, "images": len(stored),
            "max_diff_db": diff_db, "tolerance_db": tol_db, "max_diff_ssim": diff_ssim, "tolerance_ssim": tol_ssim,
            "match": not problems, **({"differs": problems} if problems else {})}
