"""Small run folders (network.json + weights.safetensors) shared by the restore and export
tests: a denoiser trained for real (smoke profile, embedded images, a few seconds) and an SR
x2 network with random weights and non-trivial BatchNorm statistics (no data needed)."""
from __future__ import annotations

import json
from pathlib import Path

_CACHE: dict[str, Path] = {}


def denoise_run(root: Path) -> Path:
    if "denoise" not in _CACHE:
        from hinas.engine import RunConfig, train
        from hinas.space.genotype import random_genotype

        cfg = RunConfig.from_profile("smoke", "denoise", None, iterations=2, val_every=1, val_after_fraction=0.0,
                                     quiet=True, data_root=None)
        g = random_genotype("denoise", layers=cfg.layers, steps=cfg.steps, seed=1)
        out = Path(root) / "dn"
        train(cfg, g, out, progress=False)
        _CACHE["denoise"] = out
    return _CACHE["denoise"]


def sr_run(root: Path, scale: int = 2) -> Path:
    key = f"sr{scale}"
    if key not in _CACHE:
        import torch
        from safetensors.torch import save_file

        from hinas.space.network_file import build_model
        from hinas.space.genotype import random_genotype

        g = random_genotype("sr", layers=2, steps=2, seed=2, scale=scale)
        spec = {"model": "hinas", "task": "sr", "scale": scale, "genotype": g.to_dict(), "f": 4, "residual": True,
                "node_channels": None, "in_channels": g.in_channels}
        torch.manual_seed(0)
        model = build_model(spec)
        model.train()
        with torch.no_grad():  # move the BN running statistics away from their defaults
            for _ in range(3):
                model(torch.rand(2, g.in_channels, 24, 24))
        out = Path(root) / key
        out.mkdir(parents=True)
        (out / "network.json").write_text(json.dumps(spec))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "weights.safetensors"))
        _CACHE[key] = out
    return _CACHE[key]
