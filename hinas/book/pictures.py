"""Denoised images to look at (the paper's Figs. 5, 8 and 12): one test image, its noisy version
under the ``standard`` protocol (the same seeded noise every evaluation draws for that image),
and each network's output, with the PSNR/SSIM of the whole image, which equal that image's
per-image scores in an evaluation summary (tested)."""

from __future__ import annotations

import numpy as np


# the paper's own BSD200 examples (its Fig. 8 shows these at sigma 50)
PAPER_IMAGES = ("81095", "101027", "207038")


def denoise_image(networks: dict, *, dataset: str = "BSDS500-test", image: str | int = 0, sigma: float = 50.0,
                  data_root=None, bm3d: bool = False) -> dict:
    """``{name, clean, images: {label: uint8 image}, scores: {label: (psnr, ssim)}}`` for one image
    of ``dataset`` (its name, or its index in name order): the noisy input, BM3D when ``bm3d``,
    and each ``{label: run folder}`` (``network.json`` + weights)."""
    import torch

    from hinas import metrics
    from hinas.data.datasets import load_dataset
    from hinas.data.degrade import add_noise_seeded, to_grey
    from hinas.errors import DataError
    from hinas.evaluation import bm3d_restore, from_tensor, quantise, to_tensor
    from hinas.network_file import load_trained

    ds = load_dataset(dataset, data_root, grey=True)
    if isinstance(image, int):
        rec = ds.limit(image + 1).records[image]  # decode one image, not the whole set
    else:
        if str(image) not in ds.names:
            raise DataError(f"{dataset} has no image named {image!r}")
        rec = ds.select([image]).records[0]  # decodes this image only
    clean = to_grey(rec.image)
    noisy = add_noise_seeded(clean.astype(np.float32) / 255.0, sigma, rec.name)
    images = {"noisy input": quantise(np.clip(noisy, 0.0, 1.0))}
    with torch.no_grad():
        if bm3d:
            images["BM3D"] = quantise(from_tensor(bm3d_restore(sigma)(to_tensor(noisy, "cpu"))))
        for label, folder in networks.items():
            model, _ = load_trained(folder, "best", "cpu")
            images[label] = quantise(from_tensor(model.eval()(to_tensor(noisy, "cpu"))))
    scores = {k: (metrics.calculate_psnr(v, clean), metrics.calculate_ssim(v, clean)) for k, v in images.items()}
    return {"name": rec.name, "dataset": dataset, "sigma": sigma, "clean": clean, "images": images, "scores": scores}


def crop_box(shape, size: int = 160) -> tuple[int, int, int]:
    """A central square ``(y, x, side)`` of at most ``size`` pixels."""
    h, w = shape[:2]
    side = min(size, h, w)
    return (h - side) // 2, (w - side) // 2, side


def denoised_figure(result: dict, box=None):
    """The clean crop, then the noisy input and every network's output on the same crop, each
    titled with its whole-image PSNR/SSIM (a :func:`denoise_image` result)."""
    import matplotlib.pyplot as plt

    y, x, side = box or crop_box(result["clean"].shape)
    panels = [("clean", result["clean"], None)] + [(k, v, result["scores"][k]) for k, v in result["images"].items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (label, img, score) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img[y:y + side, x:x + side], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(label if score is None else f"{label}\n{score[0]:.2f} dB / {score[1]:.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{result['dataset']} image {result['name']}, sigma {result['sigma']:g}: a central "
                 f"{side}x{side} crop; scores are of the whole image (standard protocol)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    plt.close(fig)  # shown once, where the caller displays it
    return fig


def paper_figures(repo, data_root, *, sigma: float = 50.0, images=PAPER_IMAGES) -> list:
    """Chapter 6's pictures: for each of the paper's BSD200 examples, :func:`denoised_figure` of
    BM3D and every committed GPU denoiser trained at ``sigma`` (labelled as the tables label them).
    Without the BSD200 images (no data root) or the ``bm3d`` package, one Markdown line saying so."""
    from pathlib import Path

    from IPython.display import Markdown

    from hinas.book import committed as cm
    from hinas.errors import HinasError

    trained = cm.campaign_rows(repo, "train")
    unsearched = cm.unsearched_networks(repo)
    nets = {}
    for r in trained.itertuples() if len(trained) else ():
        if r.task == "denoise" and float(r.sigma[0] if isinstance(r.sigma, list) else r.sigma) == float(sigma):
            nets.setdefault(cm.method_label(r.model, f"{r.results}/{r.item}", unsearched), Path(repo) / r.results / r.item)
    if not nets:
        return [Markdown(f"No committed GPU denoiser at sigma {sigma:g} yet: nothing to show.")]
    import importlib.util

    use_bm3d = importlib.util.find_spec("bm3d") is not None
    figs = []
    for name in images:
        try:
            figs.append(denoised_figure(denoise_image(nets, image=name, sigma=sigma, data_root=data_root, bm3d=use_bm3d)))
        except HinasError as exc:  # no data root, or a set without this image
            return [Markdown(f"The paper's BSD200 images are not available to this build ({exc}); "
                             f"build with HINAS_DATA set to see them.")]
    if not use_bm3d:
        figs.append(Markdown("BM3D is left out: the optional `bm3d` package is not installed."))
    return figs
