"""Every key of every plan item, checked when the plan is loaded (before anything is written).

Types, ranges and known values: ``budget`` and ``estimate`` finite seconds; bench sizes positive
integers; eval ``datasets`` registered names, ``sigma`` in (0, 255], ``protocols`` a list of
:data:`hinas.eval.evaluation.PROTOCOLS` (a bare string is refused), ``precisions`` a list of
:data:`PRECISIONS`, ``limit`` a positive integer, ``crop`` (central crops) at least SSIM's 11 pixels;
baseline ``method`` one of :data:`hinas.eval.evaluation.BASELINES`; a train item's ``genotype_edit``
(``{kind: R1|R2, edges: N}``, Table 6) only with ``genotype_from``; ``long``/``curve`` (:mod:`hinas.campaign.long`);
``genotype_from`` an earlier *search* or *rsws* item (train items only), ``network_from`` an earlier
*train* item (eval items only), ``supernet_from`` an earlier *search* item (rsws items, which need
it; their ``samples`` a positive integer). Bench ``speed_steps: 0`` measures memory only. Each
failure is one line: file, item, key and the fix.
"""

from __future__ import annotations

from hinas.errors import ConfigError, HinasError
from hinas.safeio import finite_number

OPTIONS = {
    "bench": {"batch", "size", "f", "layers", "steps", "levels", "repeats", "speed_steps", "speed_profile"},
    "search": {"long"},
    "rsws": {"samples"},
    "train": {"long", "curve", "from_unmoved_search", "genotype_edit"},
    "eval": {"datasets", "sigma", "protocols", "precisions", "limit", "crop"},
    "baseline": {"method", "datasets", "sigma", "protocols", "limit", "crop"},
}
# which item kind may name which earlier items: key -> (the kind that has it, the kinds it may name)
DEPENDENCIES = {"genotype_from": ("train", ("search", "rsws")), "network_from": ("eval", ("train",)),
                "supernet_from": ("rsws", ("search",))}
RSWS_SAMPLES = 30  # the paper's N (Table 1)
BENCH_INTS = ("batch", "size", "f", "layers", "steps", "levels", "repeats")
PRECISIONS = ("fp32", "bf16")
CURVE_KEYS = {"every", "dataset", "limit", "protocol"}
CURVE_DEFAULTS = {"dataset": None, "limit": 20, "protocol": "standard"}  # dataset None: the task's test set


def number(value, what: str, example: str, *, lo: float | None = None, positive: bool = False) -> float:
    """``value`` as a finite float (never a bool or a string) at least ``lo`` (above 0 if
    ``positive``), else a ConfigError naming ``what``: :func:`hinas.safeio.finite_number`'s check
    with this module's one message."""
    try:
        v = finite_number(value, what, lo=lo, bools=False, numbers_only=True)
        return finite_number(v, what, lo=0, lo_open=True) if positive else v
    except HinasError:
        bound = "a positive" if positive else ("a non-negative" if lo == 0 else "a finite")
        raise ConfigError(f"{what} must be {bound} number of {example}, got {value!r}") from None


def positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return value


def check_item_options(item, where: str, earlier: dict) -> None:
    """Refuse any bad key of ``item`` (``earlier``: the plan's items before it, by name)."""

    kind = item.kind
    for key, (owner, wants) in DEPENDENCIES.items():
        dep = getattr(item, key)
        if dep is None:
            continue
        if kind != owner:
            raise ConfigError(f"{where}: '{key}' belongs to {owner} items only; remove it")
        if not isinstance(dep, str) or dep not in earlier:
            raise ConfigError(f"{where}: depends on {dep!r}, which is not an earlier item of the plan")
        if earlier[dep].kind not in wants:
            raise ConfigError(f"{where}: '{key}: {dep}' names a {earlier[dep].kind} item; it must name an earlier "
                              f"{' or '.join(wants)} item")
    if item.budget is not None:
        item.budget = number(item.budget, f"{where}: budget", "seconds, e.g. 'budget: 240'", positive=True)
        if kind not in ("search", "train"):
            raise ConfigError(f"{where}: 'budget' sizes search/train schedules only; remove it")
    if kind in ("search", "train"):
        item_config(item, None, None)  # validates the settings now, before any run
    if kind == "train" and item.config.get("model", "hinas") == "hinas" and not item.genotype_from:
        raise ConfigError(f"{where}: a hinas train item needs 'genotype_from: <search item>' (or model: dncnn)")
    if kind == "eval" and not item.network_from:
        raise ConfigError(f"{where}: an eval item needs 'network_from: <train item>'")
    if kind == "rsws" and not item.supernet_from:
        raise ConfigError(f"{where}: an rsws item needs 'supernet_from: <search item>' (whose supernet ranks the samples)")
    unknown = set(item.options) - OPTIONS[kind]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                          f"known: {', '.join(sorted(OPTIONS[kind]))}")
    if kind == "bench":
        _check_bench(item, where)
    elif kind == "rsws":
        positive_int(item.options.get("samples", RSWS_SAMPLES), f"{where}: 'samples'")
    elif kind == "eval":
        _check_eval(item, where, item_config(earlier[item.network_from], None, None).task)
    elif kind == "baseline":
        from hinas.eval.evaluation import BASELINES

        if item.options.get("method") not in BASELINES:
            raise ConfigError(f"{where}: a baseline needs 'method', one of {', '.join(BASELINES)}; got "
                              f"{item.options.get('method')!r}")
        _check_eval(item, where, "denoise")
    else:
        check_long(item, where)
        if not isinstance(item.options.get("from_unmoved_search", False), bool):
            raise ConfigError(f"{where}: 'from_unmoved_search' must be true or false, got "
                              f"{item.options['from_unmoved_search']!r}")
        _check_edit(item, where)


def _check_bench(item, where: str) -> None:
    from hinas.engine.config import PROFILES

    o = item.options
    for key in BENCH_INTS:
        if key in o:
            positive_int(o[key], f"{where}: '{key}'")
    steps = o.get("speed_steps", 0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"{where}: 'speed_steps' must be a non-negative integer (0: memory only), got {steps!r}")
    if "speed_profile" in o and o["speed_profile"] not in PROFILES:
        raise ConfigError(f"{where}: unknown speed_profile {o['speed_profile']!r}; use one of {', '.join(PROFILES)}")


def _check_edit(item, where: str) -> None:
    """``genotype_edit: {kind: R1|R2, edges: N}`` (Table 6): only on a train item from a genotype."""
    edit = item.options.get("genotype_edit")
    if edit is None:
        return
    example = "{kind: R1, edges: 2} (R1: ops replaced, R2: connections changed, on N edges per cell)"
    if not item.genotype_from:
        raise ConfigError(f"{where}: 'genotype_edit' changes the genotype of 'genotype_from'; this item has none")
    if not isinstance(edit, dict) or set(edit) != {"kind", "edges"} or edit["kind"] not in ("R1", "R2"):
        raise ConfigError(f"{where}: 'genotype_edit' must be {example}, got {edit!r}")
    positive_int(edit["edges"], f"{where}: 'genotype_edit' edges")


def _names(value, where: str, key: str, example: str) -> list:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: '{key}' must be a list such as {example}, got {value!r}")
    if len(set(map(str, value))) != len(value):
        raise ConfigError(f"{where}: '{key}' names a value twice: {value!r}")
    return value


def _check_eval(item, where: str, task: str) -> None:
    from hinas.data.datasets import EMBEDDED_SPLIT, DATASETS, canonical_name
    from hinas.eval.evaluation import PROTOCOLS

    o = item.options
    if o.get("datasets") is not None:
        datasets = o["datasets"] if isinstance(o["datasets"], list) else [o["datasets"]]
        for ds in _names(datasets, where, "datasets", "[Set5, Set14]"):
            if not isinstance(ds, str) or (ds != "default" and canonical_name(ds) is None):
                raise ConfigError(f"{where}: unknown dataset {ds!r} in 'datasets'; use registered names "
                                  f"({', '.join(list(DATASETS) + list(EMBEDDED_SPLIT))}) or 'default'")
    if "sigma" in o:
        sigma = number(o["sigma"], f"{where}: 'sigma'", "noise levels on the 0-255 scale, e.g. 'sigma: 50'",
                       positive=True)
        if sigma > 255:
            raise ConfigError(f"{where}: 'sigma' must be at most 255 (the 0-255 scale), got {o['sigma']!r}")
    elif task == "denoise":
        raise ConfigError(f"{where}: a denoising evaluation needs 'sigma' (e.g. 'sigma: 50')")
    if "protocols" in o:
        for p in _names(o["protocols"], where, "protocols", "[standard]"):
            if p not in PROTOCOLS:
                raise ConfigError(f"{where}: unknown protocol {p!r} in 'protocols'; use a list of "
                                  f"{', '.join(PROTOCOLS)}")
    if "precisions" in o:
        for p in _names(o["precisions"], where, "precisions", "[fp32, bf16]"):
            if p not in PRECISIONS:
                raise ConfigError(f"{where}: unknown precision {p!r} in 'precisions'; use a list of "
                                  f"{', '.join(PRECISIONS)}")
    if o.get("limit") is not None:
        positive_int(o["limit"], f"{where}: 'limit' (images)")
    if o.get("crop") is not None:
        positive_int(o["crop"], f"{where}: 'crop' (pixels)")
        if o["crop"] < 11:  # SSIM's 11x11 window
            raise ConfigError(f"{where}: 'crop' must be at least 11 pixels (SSIM's window), got {o['crop']!r}")


def check_long(item, where: str) -> None:
    """Refuse bad ``long``/``curve`` options with one line naming the plan, the item and the fix."""

    o = item.options
    if "long" in o and not isinstance(o["long"], bool):
        raise ConfigError(f"{where}: 'long' must be true or false, got {o['long']!r}")
    if o.get("long") and item.budget is not None:
        budget = int(item.budget) if float(item.budget).is_integer() else item.budget
        raise ConfigError(f"{where}: a long item runs its config's fixed length, never a budget; remove "
                          f"'budget: {budget}' (or 'long: true')")
    if "curve" not in o:
        return
    curve = o["curve"]
    if not o.get("long"):
        raise ConfigError(f"{where}: 'curve' needs 'long: true' (a learning curve is measured on a long training)")
    if not isinstance(curve, dict):
        raise ConfigError(f"{where}: 'curve' must be a mapping such as {{every: 5000, dataset: BSDS500-test, "
                          f"limit: 20, protocol: standard}}")
    unknown = set(curve) - CURVE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown curve key(s) {', '.join(sorted(map(str, unknown)))}; "
                          f"known: {', '.join(sorted(CURVE_KEYS))}")
    cfg = item_config(item, None, None)
    every = curve.get("every")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"{where}: curve 'every' must be a positive number of iterations, got {every!r}")
    if every % cfg.log_every:
        raise ConfigError(f"{where}: curve every {every} is not a multiple of log_every {cfg.log_every} (training "
                          f"pauses only at log points); use a multiple of {cfg.log_every}")
    if every > cfg.iterations:
        raise ConfigError(f"{where}: curve every {every} exceeds the item's {cfg.iterations} iterations; "
                          f"use at most {cfg.iterations}")
    limit = curve.get("limit", CURVE_DEFAULTS["limit"])
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"{where}: curve 'limit' must be a positive number of images, got {limit!r}")
    dataset = curve.get("dataset")
    if dataset is not None:
        from hinas.data.datasets import canonical_name

        if not isinstance(dataset, str) or not dataset or canonical_name(dataset) is None:
            raise ConfigError(f"{where}: curve 'dataset' must be a registered dataset name such as BSDS500-test, "
                              f"got {dataset!r}")
    from hinas.eval.evaluation import PROTOCOLS

    protocol = curve.get("protocol", CURVE_DEFAULTS["protocol"])
    if protocol not in PROTOCOLS:
        raise ConfigError(f"{where}: unknown curve protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


def item_config(item, device, data_root, settings: dict | None = None):
    """The :class:`~hinas.engine.config.RunConfig` of a search/train item (``device`` and
    ``data_root`` of the call when given; ``settings`` from ``--set``)."""
    from hinas.engine.config import RunConfig

    values = {**item.config, **(settings or {})}
    profile = values.pop("profile", "smoke")
    task = values.pop("task", "denoise")
    scale = values.pop("scale", None)
    if device is not None:
        values["device"] = device
    if data_root is not None:
        values["data_root"] = data_root
    values.setdefault("quiet", True)
    try:
        return RunConfig.from_profile(profile, task, scale, **values)
    except ConfigError as exc:
        raise ConfigError(f"plan item {item.name!r}: {exc}") from None


CURVE_FILE = "curve.json"


def is_long(item) -> bool:
    return bool(item.options.get("long"))


def curve_of(item) -> dict | None:
    """The item's curve options with their defaults, or None."""
    c = item.options.get("curve")
    return {**CURVE_DEFAULTS, **c} if isinstance(c, dict) else None
