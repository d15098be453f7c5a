"""Plans: the YAML files of :data:`PLANS_DIR`, read into :class:`Plan` and :class:`Item`.

A plan is checked whole when it is loaded, before anything runs or is written: every key of
every item (:mod:`hinas.campaign.options`), the search/train settings (through
:class:`~hinas.engine.config.RunConfig`), and the dependencies (``genotype_from`` names an
earlier *search* item, ``network_from`` an earlier *train* item). A failure is one
:class:`~hinas.errors.ConfigError` line naming the plan file, the item, the key and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hinas.errors import ConfigError, HinasError
from hinas.safeio import load_yaml_file

PLANS_DIR = Path(__file__).resolve().parent.parent / "plans"
KINDS = ("bench", "search", "train", "eval")
PLAN_KEYS = ("name", "description", "defaults", "items")

# what ``campaign run --set`` may change: how items run, never what they compute
SETTABLE = ("cuda_graphs", "fused_optimizer", "cudnn_benchmark", "native_batchnorm", "channels_last", "threads",
            "checkpoint_every")


@dataclass
class Item:
    name: str
    kind: str
    config: dict = field(default_factory=dict)
    budget: float | None = None  # search/train: schedule sized to this many seconds
    estimate: float = 5.0  # seconds needed to make useful progress; not started with less left
    genotype_from: str | None = None
    network_from: str | None = None
    options: dict = field(default_factory=dict)  # bench / eval / long settings

    @property
    def depends(self) -> list[str]:
        return [d for d in (self.genotype_from, self.network_from) if d]


@dataclass
class Plan:
    name: str
    description: str
    items: list[Item]
    path: str

    def item(self, name: str) -> Item:
        """The item called ``name`` (a KeyError when the plan has none)."""
        for i in self.items:
            if i.name == name:
                return i
        raise KeyError(name)


def list_plans() -> list[str]:
    return sorted(p.stem for p in PLANS_DIR.glob("*.yaml"))


def is_plan_file(name_or_file) -> bool:
    """Whether ``--plan`` names a file (a folder or a suffix in it) rather than a shipped plan."""
    text = str(name_or_file)
    return bool(Path(text).suffix) or "/" in text or os.sep in text


def load_plan(name_or_file) -> Plan:
    """A plan by name (``hinas/plans/NAME.yaml``) or YAML file; checked before any run.
    The file is read within bounds (a regular file of at most 1 MiB, :func:`hinas.safeio.load_yaml_file`)."""
    from hinas.campaign.options import check_item_options, number

    if not str(name_or_file).strip():
        raise ConfigError(f"--plan {str(name_or_file)!r}: an empty plan name; give one of {', '.join(list_plans())} "
                          f"or a YAML file")
    path = Path(str(name_or_file))
    if not is_plan_file(name_or_file):
        path = PLANS_DIR / f"{name_or_file}.yaml"
        if not path.exists():
            raise ConfigError(f"unknown plan {name_or_file!r}; known plans: {', '.join(list_plans())} "
                              f"(or give a YAML file)")
    try:
        data = load_yaml_file(path, "plan")
    except HinasError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list) or not data["items"]:
        raise ConfigError(f"{path}: a plan is a mapping with a non-empty 'items' list")
    unknown = sorted(map(str, set(data) - set(PLAN_KEYS)))
    if unknown:
        raise ConfigError(f"{path}: unknown plan key(s) {', '.join(unknown)}; known: {', '.join(PLAN_KEYS)}")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a mapping of settings")
    items: list[Item] = []
    earlier: dict[str, Item] = {}
    for n, raw in enumerate(data["items"], 1):
        where = f"{path}: item {n}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping")
        raw = dict(raw)
        name = str(raw.pop("name", ""))
        if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
            raise ConfigError(f"{where}: 'name' must be letters, digits, '-', '_' or '.', got {name!r}")
        where = f"{path}: item {name!r}"
        if name in earlier:
            raise ConfigError(f"{where}: the name is used twice")
        kind = raw.pop("kind", None)
        if kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        config = dict(defaults) if kind in ("search", "train") else {}
        extra = raw.pop("config", None) or {}
        if not isinstance(extra, dict):
            raise ConfigError(f"{where}: 'config' must be a mapping of settings")
        config.update(extra)
        estimate = number(raw.pop("estimate", 5.0), f"{where}: 'estimate'", "seconds, e.g. 'estimate: 30'", lo=0)
        item = Item(name=name, kind=kind, config=config, budget=raw.pop("budget", None), estimate=estimate,
                    genotype_from=raw.pop("genotype_from", None), network_from=raw.pop("network_from", None),
                    options=raw)
        check_item_options(item, where, earlier)
        items.append(item)
        earlier[name] = item
    return Plan(name=str(data.get("name") or path.stem), description=str(data.get("description", "")),
                items=items, path=str(path))


def parse_settings(assignments) -> dict:
    """``["key=value", ...]`` of ``campaign run --set`` (values read as YAML scalars); only
    :data:`SETTABLE` keys, so a call changes how the plan runs, never its results."""
    out = {}
    for item in assignments or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or key not in SETTABLE:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(SETTABLE)} "
                              f"(settings that change results belong in the plan file)")
        try:
            out[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key] = raw
    return out
