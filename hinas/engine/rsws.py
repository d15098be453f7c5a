"""Random search with weight sharing (RSWS, the paper's Table 1 baseline).

``n`` architectures (cells and width path) are drawn uniformly and each is scored on the
search's held-out images V with the shared weights of a supernet that a search trained (one-hot
alpha and beta, :meth:`hinas.space.supernet.Supernet.fixed_architecture`), under the search's
``val_protocol``, by the search's own selection score (SSIM + PSNR/100,
:func:`hinas.eval.metrics.selection_score`). The best is kept; no sample is trained. A campaign
runs it as an ``rsws`` item (:mod:`hinas.campaign.runners`), from a search item's
``supernet.safetensors``.
"""

from __future__ import annotations

from hinas.engine.config import RunConfig
from hinas.eval.metrics import selection_score
from hinas.space.genotype import Genotype, origin, random_genotype


def rank_random_architectures(supernet, val_records, cfg: RunConfig, *, n: int = 30, seed: int = 0,
                              device="cpu") -> dict:
    """Score ``n`` uniformly drawn architectures with ``supernet``'s shared weights on
    ``val_records`` (sample ``i`` drawn with seed ``1000 * seed + i``; without LWAS one cell for
    every layer) and keep the best.

    Returns ``{"genotype": the best Genotype, "best": its index, "scores": [{sample, psnr, ssim,
    score, path}]}``."""
    from hinas.engine.search import validate_network

    c = supernet.cfg
    ops = [p for p in c.primitives if p != "none"]
    scored = []
    for i in range(n):
        g = random_genotype(c.task, layers=c.layers, steps=c.steps, levels=c.levels, scale=c.scale,
                            ops=ops, seed=1000 * seed + i)
        if not c.lwas:  # one cell for every layer
            g = Genotype.from_dict(dict(g.to_dict(), cells=[g.cells[0]] * c.layers, lwas=False))
        with supernet.fixed_architecture(g):
            m = validate_network(supernet, val_records, cfg, device)
        scored.append({"sample": i, "psnr": m["psnr"], "ssim": m["ssim"],
                       "score": selection_score(m["psnr"], m["ssim"]), "path": list(g.path), "genotype": g})
    best = max(range(n), key=lambda i: scored[i]["score"])
    g = scored[best]["genotype"]
    g = Genotype.from_dict(dict(g.to_dict(), provenance=origin(
        source="rsws_weight_sharing", seed=seed, samples=n, sample=best, val_protocol=cfg.val_protocol,
        selection="best SSIM + PSNR/100 on V with the supernet's shared weights")))
    return {"genotype": g, "best": best, "scores": [{k: v for k, v in r.items() if k != "genotype"} for r in scored]}


def rsws_from_supernet(cfg: RunConfig, state: dict, *, n: int, device="cpu") -> dict:
    """:func:`rank_random_architectures` with the supernet of search ``cfg`` loaded from ``state``
    (its weights, alpha and beta), on that search's V images (the same split of the same
    images), drawn with the search's seed."""
    import torch

    from hinas.data import search_split
    from hinas.engine import common
    from hinas.space.supernet import Supernet

    dev = common.resolve_device(device)
    net = Supernet(cfg.supernet_config())
    net.load_state_dict(state)
    net = net.to(dev).eval()
    _, records = common.training_records(cfg)
    _, _, val = search_split(records, cfg.split_mode, cfg.val_fraction, cfg.seed)
    with torch.no_grad():
        return rank_random_architectures(net, val, cfg, n=n, seed=cfg.seed, device=dev)
