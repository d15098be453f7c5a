"""Plans: the YAML files of :data:`PLANS_DIR`, read into :class:`Plan` and :class:`Item`.

A plan is checked whole when it is loaded, before anything runs or is written: every key of
every item (:mod:`hinas.campaign.options`), the search/train settings (through
:class:`~hinas.engine.config.RunConfig`), and the dependencies (``genotype_from`` names an
earlier *search* or *rsws* item, ``network_from`` an earlier *train* item, ``supernet_from`` an
earlier *search* item) and the plan's ``tables`` (:func:`check_tables`). A failure is one
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
# Former names of shipped plans: committed summaries name the plan they ran under (provenance),
# and a name given on the command line may be an old one; both load the plan under its new name.
RENAMED = {"paper-gpu": "paper"}


def renamed_path(recorded) -> str:
    """A path a result file recorded under a renamed plan's folder (``results/paper-gpu/ITEM``),
    as it reads now (``results/paper/ITEM``); any other path unchanged."""
    parts = Path(str(recorded)).parts
    if len(parts) >= 2 and parts[0] == "results" and parts[1] in RENAMED:
        return str(Path("results", RENAMED[parts[1]], *parts[2:]))
    return str(recorded)
KINDS = ("bench", "search", "rsws", "train", "eval", "baseline")
PLAN_KEYS = ("name", "description", "defaults", "items", "profiles", "include", "tables")

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
    supernet_from: str | None = None  # rsws: the search whose supernet ranks the random architectures
    options: dict = field(default_factory=dict)  # bench / eval / long settings
    definition: str = ""  # what it computes, as a digest (:func:`definition`); set by load_plan

    @property
    def depends(self) -> list[str]:
        return [d for d in (self.genotype_from, self.network_from, self.supernet_from) if d]


@dataclass
class Plan:
    name: str
    description: str
    items: list[Item]
    path: str
    profile: str | None = None  # the profile a plan with 'profiles' was loaded at
    seed: int = 0  # added to the seeds of such a plan
    includes: list["Plan"] = field(default_factory=list)  # the plans it builds on ('include')
    profile_entry: dict = field(default_factory=dict)  # what its profile gave it (seed lists, defaults, eval)
    # the tables its results make: {table: {"each": seed list, "rows": {row label: item name with {seed}}}};
    # how the book reads the results, never part of what an item computes (:func:`check_tables`)
    tables: dict = field(default_factory=dict)

    def all_plans(self) -> list["Plan"]:
        """The plans it includes (theirs first, each once), then this one."""
        seen, out = set(), []
        for p in [q for inc in self.includes for q in inc.all_plans()] + [self]:
            if p.name not in seen:
                seen.add(p.name)
                out.append(p)
        return out

    def all_items(self) -> list[Item]:
        """This plan's items and those of the plans it includes (theirs first)."""
        return [it for p in self.all_plans() for it in p.items]

    def owner(self, name: str) -> "Plan":
        """The plan (this one or one it includes) that defines item ``name``."""
        if any(i.name == name for i in self.items):
            return self
        for inc in self.includes:
            try:
                return inc.owner(name)
            except KeyError:
                pass
        raise KeyError(name)

    def folder(self, results, name: str):
        """The results folder of item ``name``: ``results/<name>`` for this plan's own items, the
        sibling folder of the plan that defines it for an included one (``results/../<plan>/<name>``)."""
        results = Path(results)
        owner = self.owner(name)
        return results / name if owner is self else results.parent / owner.name / name

    def item(self, name: str) -> Item:
        """The item called ``name``, of this plan or one it includes (a KeyError when none has it)."""
        for i in self.all_items():
            if i.name == name:
                return i
        raise KeyError(name)


def list_plans() -> list[str]:
    return sorted(p.stem for p in PLANS_DIR.glob("*.yaml"))


def is_plan_file(name_or_file) -> bool:
    """Whether ``--plan`` names a file (a folder or a suffix in it) rather than a shipped plan."""
    text = str(name_or_file)
    return bool(Path(text).suffix) or "/" in text or os.sep in text


def _plan_path(name_or_file) -> Path:
    if not str(name_or_file).strip():
        raise ConfigError(f"--plan {str(name_or_file)!r}: an empty plan name; give one of {', '.join(list_plans())} "
                          f"or a YAML file")
    path = Path(str(name_or_file))
    if not is_plan_file(name_or_file):
        path = PLANS_DIR / f"{RENAMED.get(str(name_or_file), name_or_file)}.yaml"
        if not path.exists():
            raise ConfigError(f"unknown plan {name_or_file!r}; known plans: {', '.join(list_plans())} "
                              f"(or give a YAML file)")
    return path


def _read_raw(name_or_file, base: Path | None = None) -> tuple[dict, Path]:
    """A plan file's mapping, read within bounds (a regular file of at most 1 MiB,
    :func:`hinas.safeio.load_yaml_file`); an included name is looked up beside ``base`` first."""
    path = _plan_path(name_or_file) if base is None or not (base.parent / f"{name_or_file}.yaml").is_file() \
        else base.parent / f"{name_or_file}.yaml"
    try:
        data = load_yaml_file(path, "plan")
    except HinasError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list) or not data["items"]:
        raise ConfigError(f"{path}: a plan is a mapping with a non-empty 'items' list")
    unknown = sorted(map(str, set(data) - set(PLAN_KEYS)))
    if unknown:
        raise ConfigError(f"{path}: unknown plan key(s) {', '.join(unknown)}; known: {', '.join(PLAN_KEYS)}")
    return data, path


def profiles_of(name_or_file) -> list:
    """The profiles a plan runs at (its ``profiles``), or ``[None]`` for a plan without them."""
    data, _ = _read_raw(name_or_file)
    return list(data["profiles"]) if isinstance(data.get("profiles"), dict) else [None]


def load_plan(name_or_file, profile: str | None = None, seed: int = 0, _chain: tuple = ()) -> Plan:
    """A plan by name (``hinas/plans/NAME.yaml``) or YAML file, at ``profile`` when the plan has
    ``profiles`` (:mod:`hinas.campaign.expand`; ``seed`` is added to its seeds), with the plans
    it includes; checked whole before any run."""
    from hinas.campaign.expand import expand, extend, include_names
    from hinas.campaign.options import check_item_options, number

    data, path = _read_raw(name_or_file, _chain[-1][1] if _chain else None)
    includes = []
    for name in include_names(data, path):
        if name in [c[0] for c in _chain] or name == path.stem:
            raise ConfigError(f"{path}: 'include' goes round in a circle: "
                              f"{' -> '.join([*(c[0] for c in _chain), path.stem, name])}")
        includes.append(load_plan(name, profile, seed, (*_chain, (path.stem, path))))
    inherited: dict = {}
    for inc in includes:
        inherited = extend(inherited, inc.profile_entry)
    data = expand({k: v for k, v in data.items() if k != "include"}, path, profile, seed, inherited)
    profile_entry = data.pop("profile_entry", {})
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a mapping of settings")
    items: list[Item] = []
    earlier: dict[str, Item] = {i.name: i for inc in includes for i in inc.all_items()}
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
            raise ConfigError(f"{where}: the name is used twice (here or in an included plan)")
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
                    supernet_from=raw.pop("supernet_from", None), options=raw)
        check_item_options(item, where, earlier)
        item.definition = definition(item, earlier)
        items.append(item)
        earlier[name] = item
    plan = Plan(name=str(data.get("name") or path.stem), description=str(data.get("description", "")),
                items=items, path=str(path), profile=profile, seed=seed, includes=includes,
                profile_entry=profile_entry)
    plan.tables = check_tables(data.get("tables"), plan, path)
    return plan


def check_tables(tables, plan: Plan, path) -> dict:
    """A plan's ``tables`` (how its results are read as the paper's tables), checked: each table
    maps ``each`` (a seed list of the profile, or a list of seeds) and ``rows`` ({row label: item name, with
    ``{seed}`` for the list's seeds}); every row names an item of the plan or of the plans it
    includes for at least one seed. Returns ``{table: {"seeds": [...], "rows": {label: pattern}}}``."""
    if tables is None:
        return {}
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: 'tables' must map table names to {{each: SEEDS, rows: {{LABEL: ITEM}}}}")
    names = {it.name for it in plan.all_items()}
    out = {}
    for table, spec in tables.items():
        where = f"{path}: table {table!r}"
        if not isinstance(spec, dict) or set(spec) != {"each", "rows"} or not isinstance(spec["rows"], dict) \
                or not spec["rows"]:
            raise ConfigError(f"{where}: expected {{each: SEEDS, rows: {{LABEL: ITEM}}}}, got {spec!r}")
        # a seed list of the profile by name, or the seeds themselves (a plan without profiles)
        seeds = plan.profile_entry.get(spec["each"]) if isinstance(spec["each"], str) else spec["each"]
        if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ConfigError(f"{where}: 'each: {spec['each']}' is neither a seed list of profile {plan.profile!r} "
                              "nor a list of seeds")
        seeds = [plan.seed + s for s in seeds]
        for label, pattern in spec["rows"].items():
            if not isinstance(pattern, str) or not any(pattern.replace("{seed}", str(s)) in names for s in seeds):
                raise ConfigError(f"{where}: row {label!r}: {pattern!r} names no item of the plan for seeds {seeds}")
        out[str(table)] = {"seeds": seeds, "rows": {str(k): v for k, v in spec["rows"].items()}}
    return out


def definition(item: Item, earlier: dict) -> str:
    """A digest of what ``item`` computes as its plan says it: kind, settings, budget, options and
    the definitions of the items it builds on (not its estimate, nor how a call runs it: device,
    data root, ``--set``). A finished item records it (``summary.json``); a result whose digest
    differs from the plan's is another experiment and is never reused (status ``stale``)."""
    import hashlib
    import json

    deps = {d: earlier[d].definition for d in item.depends if d in earlier}
    blob = json.dumps({"kind": item.kind, "config": item.config, "budget": item.budget, "options": item.options,
                       "depends": deps}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
