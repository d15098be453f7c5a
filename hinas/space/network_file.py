"""A trained network on disk: a run folder's ``network.json`` (what the network is: a HiNAS
genotype with its widths, or DnCNN) beside its safetensors weights. The description is checked
(and its size estimated) before any tensor is allocated; weights load safely (safetensors,
never pickle) and must fit the description and be finite."""

from __future__ import annotations

from pathlib import Path

from hinas.errors import HinasError
from hinas.safeio import quote

NETWORK_FILE = "network.json"
MAX_F = 256  # channels per node at level 0 (the paper: 20 dn / 16 SR)
MAX_NODE_CHANNELS = 2048
MAX_PARAMS = 200_000_000  # an estimate refused before any tensor is allocated
# what hinas.engine.train.network_spec writes (DnCNN: model, task, in_channels, scale, bn_init)
NETWORK_KEYS = ("model", "task", "scale", "genotype", "f", "residual", "node_channels", "in_channels", "bn_init")


def estimate_parameters(genotype, f: int | None, node_channels=None) -> int:
    """A quick upper estimate of a derived network's size, to refuse absurd ones before building."""
    f = f or (20 if genotype.task == "denoise" else 16)
    B = genotype.steps
    total = 64 * 64 * 9 * 2
    for layer, level in enumerate(genotype.path):
        C = node_channels[layer] if node_channels else f * genotype.width_factors[level]
        total += 2 * B * (9 * C * C + C * C) + 2 * (B * C) * C  # edges (conv + pointwise) and scalers
    return int(total)


def check_network_size(genotype, f=None, node_channels=None, source: str = "the network") -> None:
    if f is not None and (isinstance(f, bool) or not isinstance(f, int) or not 1 <= f <= MAX_F):
        raise HinasError(f"{source}: f must be an integer in 1..{MAX_F}, got {f!r}")
    if node_channels is not None:
        if (not isinstance(node_channels, list) or len(node_channels) != genotype.layers
                or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= MAX_NODE_CHANNELS
                           for c in node_channels)):
            raise HinasError(f"{source}: node_channels must list {genotype.layers} integers in "
                             f"1..{MAX_NODE_CHANNELS}, got {str(node_channels)[:60]}")
    n = estimate_parameters(genotype, f, node_channels)
    if n > MAX_PARAMS:
        raise HinasError(f"{source}: this network would have about {n / 1e6:.0f} M parameters (limit "
                         f"{MAX_PARAMS / 1e6:.0f} M); use a smaller f, fewer layers or smaller width_factors")


def check_network_spec(spec, source: str = NETWORK_FILE):
    """Validate a network description (``network.json``) before anything is built from it."""
    from hinas.space.genotype import Genotype

    if not isinstance(spec, dict):
        raise HinasError(f"{source}: expected a JSON object describing the network, got {type(spec).__name__}")
    unknown = sorted(map(str, set(spec) - set(NETWORK_KEYS)))
    if unknown:
        raise HinasError(f"{source}: unknown field(s) {quote(', '.join(unknown))[:80]}; a network description has "
                         f"{', '.join(NETWORK_KEYS)} (the file was edited)")
    model = spec.get("model")
    if model == "dncnn":
        if spec.get("in_channels", 1) != 1 or spec.get("task", "denoise") != "denoise":
            raise HinasError(f"{source}: DnCNN here is the grey denoising baseline (task denoise, in_channels 1); "
                             f"the file was edited")
        return None
    if model != "hinas":
        raise HinasError(f"{source}: model must be 'hinas' or 'dncnn', got {quote(model)}")
    g = Genotype.from_dict(spec.get("genotype"), f"{source} (genotype)")
    if spec.get("task", g.task) != g.task or (g.task == "sr" and spec.get("scale", g.scale) != g.scale):
        raise HinasError(f"{source}: task/scale disagree with the genotype's; the file was edited")
    if spec.get("in_channels", g.in_channels) != g.in_channels or g.in_channels != (1 if g.task == "denoise" else 3):
        raise HinasError(f"{source}: in_channels must be 1 for denoising and 3 for SR, and agree with the "
                         f"genotype's; the file was edited")
    if not isinstance(spec.get("residual", True), bool):
        raise HinasError(f"{source}: residual must be true or false")
    if spec.get("bn_init", "torch1") not in ("torch1", "ones"):
        raise HinasError(f"{source}: bn_init must be 'torch1' or 'ones', got {quote(spec.get('bn_init'))}")
    check_network_size(g, spec.get("f"), spec.get("node_channels"), source)
    return g


def build_model(spec: dict, source: str = NETWORK_FILE):
    """The network a run folder describes (``network.json``): a HiNAS genotype or DnCNN."""
    g = check_network_spec(spec, source)
    if g is None:
        from hinas.space.baselines import DnCNN
        from hinas.space.ops import init_batchnorm

        # the same BatchNorm init as the HiNAS networks it is compared with (same recipe, same budget)
        return init_batchnorm(DnCNN(in_channels=spec.get("in_channels", 1)), spec.get("bn_init", "torch1"))
    from hinas.space.network import build_network

    return build_network(g, spec.get("f"), residual=spec.get("residual", True),
                         node_channels=spec.get("node_channels"), bn_init=spec.get("bn_init", "torch1"))


def load_trained(run_dir, which: str = "best", device="cpu"):
    """Rebuild a trained network from its run folder (safetensors weights, JSON description).

    Refuses, by name, weights holding NaN or infinite values (a diverged run is not scored).
    """
    import torch
    from safetensors.torch import load_file

    from hinas.safeio import load_json_file

    run_dir = Path(run_dir)
    spec_file = run_dir / NETWORK_FILE
    weights = run_dir / ("weights.safetensors" if which == "best" else "weights_final.safetensors")
    if not run_dir.is_dir():
        raise HinasError(f"{quote(run_dir)}: not a training run folder (no such folder); give the --out folder "
                         f"of 'hinas train'")
    if not spec_file.exists():
        raise HinasError(f"{quote(run_dir)}: not a training run folder (no {NETWORK_FILE}); give the --out folder "
                         f"of 'hinas train'")
    if not weights.is_file():
        raise HinasError(f"{quote(run_dir)}: no {weights.name} yet; the training has not reached its first "
                         f"validation (continue it with 'hinas train ... --resume')")
    spec = load_json_file(spec_file, "network description")
    model = build_model(spec, quote(spec_file))
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except Exception as exc:
        raise HinasError(f"{quote(weights)}: cannot load these weights into the network described by "
                         f"{spec_file.name} ({exc.__class__.__name__}); the files do not belong together") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise HinasError(f"{quote(weights)}: {len(bad)} tensor(s) hold NaN or infinite values "
                         f"({quote(bad[0])}{', ...' if len(bad) > 1 else ''}); the training diverged: "
                         f"retrain with a lower learning rate")
    return model.to(device).eval(), spec
