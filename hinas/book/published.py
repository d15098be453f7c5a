"""Numbers published in the HiNAS paper (IJCV), transcribed from its tables into
``published.yaml`` (data, beside this module), and the SR literature's bicubic baseline (chapter 3).

They are shown in the book beside our measurements, always labelled "published". Means are
over three seeds where the paper says so; ``std`` holds its reported standard deviation.
Protocol notes: the released code evaluates denoising on overlapping
64x64 patches with fresh noise per patch, and SR on a Y channel with R/B swapped, no border
shave; our ``hinas-reference`` protocol reproduces that, ``standard`` does not.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

SOURCE = "Zhang et al., Memory-Efficient Hierarchical NAS for Image Restoration, IJCV (published)"
DATA = Path(__file__).with_name("published.yaml")  # the transcribed tables, as data


@functools.cache
def _data() -> dict:
    return yaml.safe_load(DATA.read_text())


def table(name: str) -> list[dict]:
    """The rows of the paper's table ``name`` (``'table1'`` ... ``'table11'``), as transcribed."""
    return _data()[name]


def seed_spread_db(sigma: float):
    """The paper's spread over training seeds of its full denoising HiNAS (LWAS + ResL, Table 1: the
    standard deviation of PSNR over 3 seeds) at ``sigma``; None at a sigma the paper did not report.
    The measure of one training seed's reach where ours has a single seed per row."""
    full = next(r for r in table("table1") if r["lwas"] and r["residual"] and r["method"] == "HiNAS")
    return full["std"].get(int(sigma), (None,))[0] if float(sigma).is_integer() else None


def bicubic_rows() -> list[dict]:
    """The published bicubic SR baseline (MATLAB imresize, PSNR/SSIM on the Y channel of BT.601
    YCbCr, ``scale`` pixels of border cropped) as one flat dict per (scale, dataset) with ``psnr``,
    ``ssim`` and ``source='published'``."""
    return [{"dataset": name, "scale": scale, "psnr": psnr, "ssim": ssim, "source": "published"}
            for scale, sets in _data()["bicubic_sr"].items() for name, (psnr, ssim) in sets.items()]


def flat_rows(name: str) -> list[dict]:
    """One flat dict per (row, dataset or sigma) with ``psnr``/``ssim`` and ``source='published'``,
    ready for ``pandas.DataFrame``."""
    out = []
    for row in table(name):
        base = {k: v for k, v in row.items() if k not in ("metrics", "std", "psnr", "ssim")}
        base["source"] = "published"
        if "metrics" in row:
            for key, (psnr, ssim) in row["metrics"].items():
                r = dict(base, psnr=psnr, ssim=ssim)
                r["sigma" if isinstance(key, int) else "dataset"] = key
                if "std" in row and key in row["std"]:
                    r["psnr_std"], r["ssim_std"] = row["std"][key]
                out.append(r)
        else:
            out.append(dict(base, psnr=row["psnr"], ssim=row["ssim"]))
    return out
