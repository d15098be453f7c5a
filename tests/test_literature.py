"""Bicubic upsampling under the standard protocol against the literature table of
../shared/data/README.md (MATLAB imresize, Y of BT.601, border = scale)."""

import json
import subprocess
import sys

import pytest

from hinas.eval.evaluation import bicubic_restore, evaluate

# dataset -> scale -> (PSNR, SSIM), from the literature table; tolerances from issue 3.
LITERATURE = {
    "Set5": {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)},
    "Set14": {2: (30.24, 0.8688), 3: (27.55, 0.7742), 4: (26.00, 0.7027)},
    "B100": {2: (29.56, 0.8431), 3: (27.21, 0.7385), 4: (25.96, 0.6675)},
    "Urban100": {2: (26.88, 0.8403), 4: (23.14, 0.6577)},
}
TOLERANCE = {"Set5": (0.02, 0.002), "B100": (0.02, 0.002), "Urban100": (0.05, 0.002), "Set14": (0.1, 0.002)}
CASES = [(d, s) for d, scales in LITERATURE.items() for s in scales]


@pytest.mark.data
@pytest.mark.parametrize("dataset, scale", CASES, ids=[f"{d}-x{s}" for d, s in CASES])
def test_bicubic_matches_literature(real_data_root, dataset, scale):
    res = evaluate(bicubic_restore(scale), dataset, "sr", scale=scale, data_root=real_data_root)
    psnr, ssim = LITERATURE[dataset][scale]
    tol_psnr, tol_ssim = TOLERANCE[dataset]
    assert abs(res["psnr"] - psnr) <= tol_psnr, (res["psnr"], psnr)
    assert abs(res["ssim"] - ssim) <= tol_ssim, (res["ssim"], ssim)


@pytest.mark.data
def test_cli_contract_on_b100(real_data_root):
    out = subprocess.run([sys.executable, "-m", "hinas", "eval", "bicubic", "--dataset", "B100", "--scale", "3",
                          "--data-root", str(real_data_root), "--protocol", "standard", "--json"],
                         capture_output=True, text=True, check=True)
    res = json.loads(out.stdout)
    assert {"dataset", "scale", "images", "psnr", "ssim"} <= set(res)
    assert res["images"] == 100 and abs(res["psnr"] - 27.21) <= 0.02
