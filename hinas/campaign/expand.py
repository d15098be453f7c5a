"""Plans parameterised by profile: one definition of an experiment at every scale.

A plan may carry a ``profiles`` mapping; it is then loaded at one of them (``--profile``) and
expanded here into the plain plan that :func:`hinas.campaign.plan.load_plan` checks:

.. code-block:: yaml

    profiles:                      # what changes with the scale, and nothing else
      smoke: {seeds: [0], defaults: {iterations: 12}, eval: {limit: 1, crop: 48}}
      quick: {seeds: [0, 1], first_seed: [0], defaults: {epochs: 6}, train: {iterations: 150},
              items: {bm3d-dn50: {protocols: [standard]}}}
    include: [search]              # other plans whose items this one builds on (same profile)
    defaults: {task: denoise}      # every search/train item's settings (the profile's over these)
    items:
      - name: train-dn50-s{seed}   # one item per seed of the profile's list 'seeds'
        each: seeds
        kind: train
        genotype_from: search-dn-s{seed}
        config: {sigma: [50]}

* ``each: LIST`` repeats an item once per seed of the profile's list ``LIST`` (``seeds`` or any
  other list of the profile, e.g. the seeds a slower baseline runs at); ``{seed}`` in its name,
  ``genotype_from``, ``network_from`` and ``supernet_from`` is that seed, and its settings get ``seed: <seed>``. The
  loader's ``seed`` (the notebooks' papermill ``seed``) is added to every seed.
* A profile's ``defaults`` go over the plan's ``defaults`` (search/train items; the engine profile
  is the plan's profile); its ``train`` settings over those, for train items only (an ablation's
  shorter training, while its searches stay those of the plan it builds on); its ``eval`` options
  go under every eval and baseline item's own; its
  ``items`` change single items at that scale (``{name: {key: value}}``, the name as written in
  the plan, ``config`` merged into the item's).
* ``include`` names other plans this one builds on, loaded at the same profile and seed: its items
  may take a genotype or a network from theirs. Each plan keeps its own results folder; an
  included plan's is the sibling folder named after it (``DIR/../<name>``), and a run of the plan
  runs what it includes there first (a finished item is reused only when it is the same
  experiment: :func:`hinas.campaign.plan.definition`).
"""

from __future__ import annotations

import copy

from hinas.errors import ConfigError

PROFILE_KEYS = ("seeds", "defaults", "train", "eval", "items")
MAPPINGS = ("defaults", "train", "eval", "items")  # the profile keys that are not seed lists
MERGED = ("defaults", "train", "eval")  # the mappings an including plan extends
EXPANDED = ("name", "genotype_from", "network_from", "supernet_from")  # the item keys where {seed} is replaced


def extend(base: dict, own: dict) -> dict:
    """A profile entry ``own`` over ``base`` (an included plan's): seed lists replaced, the
    :data:`MERGED` mappings merged key by key; ``base``'s single-item changes never carried over."""
    base = {k: v for k, v in base.items() if k != "items"}
    return {**base, **own, **{k: {**base.get(k, {}), **own.get(k, {})} for k in MERGED}}


def include_names(data: dict, path) -> list:
    """The plan names of ``data``'s ``include`` (checked: a list of names, and only with profiles)."""
    names = data.get("include") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{path}: 'include' must be a list of plan names, got {names!r}")
    if names and data.get("profiles") is None:
        raise ConfigError(f"{path}: 'include' needs 'profiles' (the included plans run at the same profile)")
    return names


def expand(data: dict, path, profile: str | None, seed: int, inherited: dict | None = None) -> dict:
    """``data`` (a plan file's mapping) at ``profile``, its seed lists expanded. ``inherited``: the
    profile entry of the plans it includes, under its own (seed lists, ``defaults``, ``train``, ``eval``;
    so a plan that builds on another trains and scores at the same scale without repeating it).
    Returns the plain plan mapping and, under ``"profile_entry"``, the entry it used."""
    profiles = data.get("profiles")
    if profiles is None:
        if profile is not None:
            raise ConfigError(f"{path}: this plan has no profiles (it runs at the scale its settings give); "
                              f"leave out --profile")
        return data
    if not isinstance(profiles, dict) or not profiles:
        raise ConfigError(f"{path}: 'profiles' must map profile names to their settings")
    if profile is None:
        raise ConfigError(f"{path}: this plan runs at a profile; give one of {', '.join(map(str, profiles))} "
                          f"(--profile)")
    if profile not in profiles:
        raise ConfigError(f"{path}: no profile {profile!r}; this plan has {', '.join(map(str, profiles))}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{path}: the seed offset must be a non-negative integer, got {seed!r}")
    own = _profile_entry(profiles[profile], path, profile)
    prof = extend(inherited or {}, own)
    out = {k: v for k, v in data.items() if k not in ("profiles", "include")}
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a mapping of settings")
    out["defaults"] = {**defaults, "profile": profile, **prof.get("defaults", {})}
    items = []
    changes = dict(prof.get("items") or {})
    for n, raw in enumerate(data.get("items") or [], 1):
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: item {n}: expected a mapping")
        raw = _changed(dict(raw), changes.pop(raw.get("name"), None), f"{path}: profile {profile!r}")
        items += _expand_item(raw, f"{path}: item {n}", prof, seed)
    if changes:
        raise ConfigError(f"{path}: profile {profile!r}: 'items' names no item of the plan: {', '.join(map(str, changes))}")
    out["items"] = items
    out["profile_entry"] = prof
    return out


def _profile_entry(entry, path, profile) -> dict:
    if entry is None:
        entry = {}
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: profile {profile!r} must be a mapping such as {{seeds: [0], defaults: {{}}}}")
    for key, value in entry.items():
        if key in MAPPINGS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: profile {profile!r}: {key!r} must be a mapping")
        elif not _is_seed_list(value):
            known = ", ".join(PROFILE_KEYS)
            raise ConfigError(f"{path}: profile {profile!r}: {key!r} is neither {known} nor a list of seeds "
                              f"(non-negative integers, each once), got {value!r}")
    return entry


def _is_seed_list(value) -> bool:
    return (isinstance(value, list) and bool(value) and len(set(map(str, value))) == len(value)
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value))


def _expand_item(raw: dict, where: str, prof: dict, offset: int) -> list[dict]:
    each = raw.pop("each", None)
    kind = raw.get("kind")
    if kind in ("eval", "baseline") and prof.get("eval"):
        raw = {**prof["eval"], **raw}
    if kind == "train" and prof.get("train"):  # over the defaults, under the item's own settings
        config = raw.get("config") or {}
        if not isinstance(config, dict):
            raise ConfigError(f"{where}: 'config' must be a mapping of settings")
        raw = {**raw, "config": {**prof["train"], **config}}
    if each is None:
        _no_placeholder(raw, where)
        return [raw]
    if not isinstance(each, str) or each in MAPPINGS or each not in prof:
        lists = [k for k, v in prof.items() if k not in MAPPINGS]
        raise ConfigError(f"{where}: 'each: {each}' names no seed list of this profile; it has "
                          f"{', '.join(lists) or 'none'}")
    out = []
    for s in prof[each]:
        seed = offset + s
        item = copy.deepcopy(raw)
        for key in EXPANDED:
            if isinstance(item.get(key), str):
                item[key] = item[key].replace("{seed}", str(seed))
        if kind in ("search", "train"):
            config = item.get("config") or {}
            if not isinstance(config, dict):
                raise ConfigError(f"{where}: 'config' must be a mapping of settings")
            item["config"] = {**config, "seed": seed}
        out.append(item)
    if out and out[0].get("name") == raw.get("name"):
        raise ConfigError(f"{where}: 'each: {each}' repeats the item per seed; put '{{seed}}' in its name")
    return out


def _changed(raw: dict, change, where: str) -> dict:
    """``raw`` with a profile's change of it: keys replaced, ``config`` merged; never its name or kind."""
    if change is None:
        return raw
    if not isinstance(change, dict) or {"name", "kind", "each"} & set(change):
        raise ConfigError(f"{where}: the change of item {raw.get('name')!r} must be a mapping of its options or "
                          f"'config' (not its name, kind or seeds), got {change!r}")
    config = change.get("config")
    if config is not None and not isinstance(config, dict):
        raise ConfigError(f"{where}: item {raw.get('name')!r}: 'config' must be a mapping of settings")
    out = {**raw, **change}
    if config is not None:
        out["config"] = {**(raw.get("config") or {}), **config}
    return out


def _no_placeholder(raw: dict, where: str) -> None:
    for key in EXPANDED:
        if "{seed}" in str(raw.get(key, "")):
            raise ConfigError(f"{where}: '{{seed}}' in {key!r} needs 'each: seeds' (or another seed list)")
