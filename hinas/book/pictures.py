"""Denoised images to look at (the paper's Figs. 5, 8 and 12): test images, their noisy versions
under the ``standard`` protocol (the same seeded noise every evaluation draws for that image),
and each network's output, with the PSNR/SSIM of the whole image. Every panel is produced by
:func:`hinas.eval.evaluation.evaluate` itself, so its scores are that evaluation's per-image scores
(tested), not a second implementation of them.

Chapter 6 shows the paper's own BSD200 examples when the data root holds them, else the embedded
test photos, so that every build shows what the committed networks return; the line under the
figures says which, and why."""

from __future__ import annotations

import numpy as np


# the paper's own BSD200 examples (its Fig. 8 shows these at sigma 50)
PAPER_IMAGES = ("81095", "101027", "207038")
CROP = 160  # side of the central crop a figure shows (the scores are of the whole image)
NOISY = "noisy input"


def denoise_images(networks: dict, dataset, *, sigma: float = 50.0, bm3d: bool = False) -> list[dict]:
    """One ``{name, dataset, sigma, clean, images: {label: uint8 image}, scores: {label: (psnr, ssim)}}``
    per image of ``dataset`` (an :class:`~hinas.data.datasets.ImageDataset`), in its order: the
    noisy input, BM3D when ``bm3d``, and each ``{label: run folder}`` (``network.json`` + weights).
    Each method is one :func:`~hinas.eval.evaluation.evaluate` call (standard protocol, CPU) whose
    restore function keeps the output it returned, so picture and score cannot disagree."""
    from hinas.data.degrade import to_grey
    from hinas.eval.evaluation import bm3d_restore, evaluate, from_tensor, quantise
    from hinas.space.network_file import load_trained

    methods = {NOISY: lambda x: x}  # the noisy input scored as a restoration, as 6.1's floor row
    if bm3d:
        methods["BM3D"] = bm3d_restore(sigma)
    for label, folder in networks.items():
        methods[label] = load_trained(folder, "best", "cpu")[0]
    images: dict = {}
    scores: dict = {}
    for label, fn in methods.items():
        kept = images.setdefault(label, [])

        def restore(x, fn=fn, kept=kept):
            y = fn(x)
            kept.append(quantise(from_tensor(y)))  # what evaluate scores: clamped, rounded to 8 bits
            return y

        per_image = evaluate(restore, dataset, "denoise", sigma=sigma, protocol="standard", device="cpu")["per_image"]
        scores[label] = [(r["psnr"], r["ssim"]) for r in per_image]
    return [{"name": rec.name, "dataset": dataset.name, "sigma": sigma, "clean": to_grey(rec.image),
             "images": {k: v[i] for k, v in images.items()}, "scores": {k: v[i] for k, v in scores.items()}}
            for i, rec in enumerate(dataset.records)]


def denoise_image(networks: dict, *, dataset: str = "BSDS500-test", image: str | int = 0, sigma: float = 50.0,
                  data_root=None, bm3d: bool = False) -> dict:
    """:func:`denoise_images` of one image of ``dataset`` (its name, or its index in name order)."""
    from hinas.data.datasets import load_dataset
    from hinas.errors import DataError

    ds = load_dataset(dataset, data_root, grey=True)
    if isinstance(image, int):
        one = ds.limit(image + 1)
        one = one.select([one.names[image]])  # decode one image, not the whole set
    else:
        if str(image) not in ds.names:
            raise DataError(f"{dataset} has no image named {image!r}")
        one = ds.select([image])  # decodes this image only
    return dict(denoise_images(networks, one, sigma=sigma, bm3d=bm3d)[0], dataset=dataset)


def crop_box(shape, size: int = CROP) -> tuple[int, int, int]:
    """A central square ``(y, x, side)`` of at most ``size`` pixels."""
    h, w = shape[:2]
    side = min(size, h, w)
    return (h - side) // 2, (w - side) // 2, side


def cropped(result: dict, size: int = CROP) -> dict:
    """``result`` with the clean image and every panel cut to their central crop (what a figure
    shows), the whole-image scores kept."""
    y, x, side = crop_box(result["clean"].shape, size)

    def cut(a):
        return np.ascontiguousarray(a[y:y + side, x:x + side])

    return dict(result, clean=cut(result["clean"]), images={k: cut(v) for k, v in result["images"].items()})


def denoised_figure(result: dict, box=None):
    """The clean crop, then the noisy input and every network's output on the same crop, each
    titled with its whole-image PSNR/SSIM (a :func:`denoise_image` result, whole or
    :func:`cropped`)."""
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


def committed_denoisers(repo, sigma: float) -> dict:
    """``{label: run folder}``: every committed GPU denoiser trained at ``sigma``, labelled as the
    tables of 6.1 label them (a network of an unsearched genotype is not called searched)."""
    from pathlib import Path

    from hinas.book import committed as cm

    trained = cm.campaign_rows(repo, "train")
    unsearched = cm.unsearched_networks(repo)
    nets: dict = {}
    for r in trained.itertuples() if len(trained) else ():
        if r.task == "denoise" and float(r.sigma[0] if isinstance(r.sigma, list) else r.sigma) == float(sigma):
            nets.setdefault(cm.method_label(r.model, f"{r.results}/{r.item}", unsearched), Path(repo) / r.results / r.item)
    return nets


def shown_images(data_root, images=PAPER_IMAGES):
    """``(dataset, why)``: the paper's BSD200 examples ``images`` when the data root holds them,
    else the embedded test photos (the book's ``embedded-test``), with the reason in words."""
    from hinas.data.datasets import load_dataset, resolve_data_root
    from hinas.errors import DataError

    try:
        if resolve_data_root(data_root) is None:
            raise DataError("no data root: `HINAS_DATA` is not set")
        ds = load_dataset("BSDS500-test", data_root, grey=True)
        missing = [n for n in images if n not in ds.names]
        if missing:
            raise DataError(f"BSDS500-test under the data root has no image named {', '.join(missing)}")
        return ds.select(images), "the paper's own BSD200 examples (its Fig. 8), so comparable with its figure."
    except DataError as exc:  # no data root, a root that is not a folder, or a root without BSD200
        reason = str(exc).split(";")[0]
        return (load_dataset("embedded-test", grey=True),
                f"the embedded scikit-image test photos, because the paper's BSD200 images are not available to "
                f"this build ({reason}). They are not comparable with the paper's Fig. 8; build with `HINAS_DATA` "
                f"set to the datasets folder to see its images.")


def _network_identity(folder) -> str:
    """A digest of a run folder's network description and weights: a retrained network is a new key."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha1()
    for name in ("network.json", "weights.safetensors"):
        h.update((Path(folder) / name).read_bytes())
    return h.hexdigest()


def _to_json(result: dict) -> dict:
    import base64

    def enc(a):
        return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode()

    return {"name": result["name"], "dataset": result["dataset"], "sigma": result["sigma"],
            "shape": list(result["clean"].shape), "clean": enc(result["clean"]),
            "images": {k: enc(v) for k, v in result["images"].items()},
            "scores": {k: list(v) for k, v in result["scores"].items()}}


def _from_json(d: dict) -> dict:
    import base64

    def dec(s):
        return np.frombuffer(base64.b64decode(s), dtype=np.uint8).reshape(d["shape"])

    return {"name": d["name"], "dataset": d["dataset"], "sigma": d["sigma"], "clean": dec(d["clean"]),
            "images": {k: dec(v) for k, v in d["images"].items()},
            "scores": {k: tuple(v) for k, v in d["scores"].items()}}


def picture_set(networks: dict, data_root, *, sigma: float = 50.0, images=PAPER_IMAGES, cache=None,
                bm3d: bool | None = None) -> dict:
    """``{results: [cropped denoise results], note: one line}`` for chapter 6: :func:`shown_images`
    denoised by ``networks``, and by BM3D when ``bm3d`` (None: on the paper's images when the
    ``bm3d`` package is there; on the embedded photos it would cost more than the networks).

    With a ``cache`` folder (the book's runs root) the crops and scores are remembered, keyed by the
    images, ``sigma`` and the networks' files, because a whole-image pass costs seconds per network
    and image on a CPU core, and BM3D tens of seconds."""
    import importlib.util

    from hinas.data.datasets import resolve_data_root

    ds, why = shown_images(data_root, images)
    paper = ds.name == "BSDS500-test"
    has_bm3d = importlib.util.find_spec("bm3d") is not None
    use_bm3d = (paper and has_bm3d) if bm3d is None else bool(bm3d)

    def compute():
        return [_to_json(cropped(r)) for r in denoise_images(networks, ds, sigma=sigma, bm3d=use_bm3d)]

    if cache is None:
        shown = compute()
    else:
        root = resolve_data_root(data_root) if paper else None
        key = ["v1", ds.name, str(root), ds.names, float(sigma), use_bm3d, CROP,
               [[k, _network_identity(v)] for k, v in networks.items()]]
        shown = cached_json(cache, "pictures", key, compute)
    order = {n: i for i, n in enumerate(images)}
    results = sorted(map(_from_json, shown), key=lambda r: order.get(r["name"], len(order)))
    if use_bm3d:
        bm3d_note = ""
    elif not has_bm3d:
        bm3d_note = " BM3D is left out: the optional `bm3d` package is not installed."
    else:
        bm3d_note = " BM3D is left out on these photos: on a CPU it takes longer than the networks."
    names = ", ".join(r["name"] for r in results)
    note = (f"*Shown: {names} of `{ds.name}`, denoised at sigma {sigma:g} on the CPU by "
            f"{', '.join(networks)}: {why}{bm3d_note}*")
    return {"results": results, "note": note}


def paper_figures(repo, data_root, *, sigma: float = 50.0, images=PAPER_IMAGES, cache=None) -> list:
    """Chapter 6's pictures: :func:`denoised_figure` of each image of :func:`picture_set` for every
    committed GPU denoiser trained at ``sigma``, then the line saying which images these are and why."""
    from IPython.display import Markdown

    nets = committed_denoisers(repo, sigma)
    if not nets:
        return [Markdown(f"No committed GPU denoiser at sigma {sigma:g} yet: nothing to show.")]
    shown = picture_set(nets, data_root, sigma=sigma, images=images, cache=cache)
    return [denoised_figure(r) for r in shown["results"]] + [Markdown(shown["note"])]


def cached_json(folder, prefix: str, key_parts, compute):
    """``folder/<prefix>-<sha1 of key_parts>.json``, read when it holds readable JSON, else
    ``compute()``'d and written atomically (a build killed mid-write leaves no half file to be
    read back as a result)."""
    import hashlib
    import json
    from pathlib import Path

    from hinas.safeio import atomic_write_text

    key = hashlib.sha1(json.dumps(key_parts).encode()).hexdigest()[:10]
    path = Path(folder) / f"{prefix}-{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or damaged: computed again
        pass
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(value, indent=1, default=str))
    return value
