"""Numbers published in the HiNAS paper (IJCV), transcribed from its tables, and the SR
literature's bicubic baseline (:data:`BICUBIC_SR`, chapter 3).

They are shown in the book beside our measurements, always labelled "published". Means are
over three seeds where the paper says so; ``std`` holds its reported standard deviation.
Protocol notes: the released code evaluates denoising on overlapping
64x64 patches with fresh noise per patch, and SR on a Y channel with R/B swapped, no border
shave; our ``hinas-reference`` protocol reproduces that, ``standard`` does not.
"""

from __future__ import annotations

SOURCE = "Zhang et al., Memory-Efficient Hierarchical NAS for Image Restoration, IJCV (published)"


def _dn(psnr30, ssim30, psnr50, ssim50, psnr70, ssim70):
    return {30: (psnr30, ssim30), 50: (psnr50, ssim50), 70: (psnr70, ssim70)}


# Table 1: LWAS x ResL for denoising (BSD500, grey), mean (std) over 3 seeds.
TABLE1_DENOISE_ABLATION = [
    {"method": "RSWS (N=30)", "lwas": False, "residual": False, "params_m": "0.23-0.31",
     "metrics": _dn(28.93, 0.8344, 26.60, 0.7583, 25.31, 0.7003),
     "std": _dn(0.1216, 0.0023, 0.0982, 0.0008, 0.0608, 0.0025)},
    {"method": "HiNAS", "lwas": False, "residual": False, "params_m": "0.23-0.31",
     "metrics": _dn(29.15, 0.8386, 26.70, 0.7591, 25.39, 0.7024),
     "std": _dn(0.0238, 0.0022, 0.1749, 0.0030, 0.0340, 0.0023)},
    {"method": "HiNAS", "lwas": True, "residual": False, "params_m": "0.23-0.34",
     "metrics": _dn(29.17, 0.8399, 26.78, 0.7616, 25.42, 0.7062),
     "std": _dn(0.0096, 0.0008, 0.0723, 0.0028, 0.0126, 0.0021)},
    {"method": "HiNAS", "lwas": False, "residual": True, "params_m": "0.20-0.29",
     "metrics": _dn(29.20, 0.8407, 26.80, 0.7622, 25.39, 0.7065),
     "std": _dn(0.0263, 0.0016, 0.0500, 0.0014, 0.0238, 0.0010)},
    {"method": "HiNAS", "lwas": True, "residual": True, "params_m": "0.22-0.34",
     "metrics": _dn(29.23, 0.8411, 26.81, 0.7649, 25.43, 0.7069),
     "std": _dn(0.0346, 0.0015, 0.0700, 0.0035, 0.0265, 0.0006)},
]

def seed_spread_db(sigma: float):
    """The paper's spread over training seeds of its full denoising HiNAS (LWAS + ResL, Table 1: the
    standard deviation of PSNR over 3 seeds) at ``sigma``; None at a sigma the paper did not report.
    The measure of one training seed's reach where ours has a single seed per row."""
    full = next(r for r in TABLE1_DENOISE_ABLATION if r["lwas"] and r["residual"] and r["method"] == "HiNAS")
    return full["std"].get(int(sigma), (None,))[0] if float(sigma).is_integer() else None


# Table 2: LWAS x ResL for x4 SR; PSNR/SSIM on Set5, Set14, BSD100, Urban100.
TABLE2_SR_ABLATION = [
    {"method": "RSWS (N=30)", "lwas": False, "residual": False, "params_m": "0.29-0.33",
     "metrics": {"Set5": (30.14, 0.8730), "Set14": (26.92, 0.7685), "B100": (26.53, 0.7273), "Urban100": (24.40, 0.7419)}},
    {"method": "HiNAS", "lwas": False, "residual": False, "params_m": "0.28-0.29",
     "metrics": {"Set5": (30.76, 0.8812), "Set14": (27.31, 0.7761), "B100": (26.92, 0.7357), "Urban100": (24.70, 0.7517)}},
    {"method": "HiNAS", "lwas": True, "residual": False, "params_m": "0.27-0.31",
     "metrics": {"Set5": (30.88, 0.8825), "Set14": (27.44, 0.7789), "B100": (27.03, 0.7372), "Urban100": (24.87, 0.7563)}},
    {"method": "HiNAS", "lwas": False, "residual": True, "params_m": "0.29-0.32",
     "metrics": {"Set5": (31.66, 0.8922), "Set14": (27.83, 0.7876), "B100": (27.32, 0.7456), "Urban100": (25.45, 0.7760)}},
    {"method": "HiNAS", "lwas": True, "residual": True, "params_m": "0.29-0.33",
     "metrics": {"Set5": (31.72, 0.8926), "Set14": (27.85, 0.7881), "B100": (27.35, 0.7465), "Urban100": (25.51, 0.7779)}},
]

# Table 3: searched widths vs fixed widths, denoising sigma=30.
TABLE3_WIDTHS = [
    {"method": "HiNAS-ws", "params_m": 0.34, "psnr": 29.25, "ssim": 0.8420, "node_channels": None, "sigma": 30},
    {"method": "HiNAS-w40", "params_m": 0.57, "psnr": 29.14, "ssim": 0.8409, "node_channels": [40, 40, 40], "sigma": 30},
    {"method": "HiNAS-wm", "params_m": 0.75, "psnr": 29.19, "ssim": 0.8413, "node_channels": [20, 40, 80], "sigma": 30},
]

# Table 4: MSE only (HiNAS*) vs MSE + lssim (HiNAS**), denoising.
TABLE4_LOSS_DENOISE = [
    {"method": "HiNAS* (MSE)", "ssim_weight": 0.0, "metrics": _dn(29.03, 0.8254, 26.77, 0.7498, 25.42, 0.6962)},
    {"method": "HiNAS** (MSE + lssim)", "ssim_weight": 0.6, "metrics": _dn(29.14, 0.8403, 26.77, 0.7635, 25.48, 0.7129)},
]

# Table 5: the same for x4 SR.
TABLE5_LOSS_SR = [
    {"method": "HiNAS* (MSE)", "ssim_weight": 0.0,
     "metrics": {"Set5": (31.72, 0.8904), "B100": (27.38, 0.7367), "Urban100": (25.47, 0.7691)}},
    {"method": "HiNAS** (MSE + lssim)", "ssim_weight": 0.6,
     "metrics": {"Set5": (31.74, 0.8928), "B100": (27.35, 0.7467), "Urban100": (25.52, 0.7785)}},
]

# Tables 6/7: modified cells (R1: ops replaced, R2: connections changed).
TABLE6_ARCH_DENOISE = [
    {"method": "HiNAS", "psnr": 29.25, "ssim": 0.8420, "sigma": 30},
    {"method": "HiNAS, R1", "psnr": 29.21, "ssim": 0.8418, "sigma": 30},
    {"method": "HiNAS, R2", "psnr": 29.12, "ssim": 0.8304, "sigma": 30},
]
TABLE7_ARCH_SR = [
    {"method": "HiNAS", "metrics": {"Set5": (31.74, 0.8928), "B100": (27.35, 0.7467), "Urban100": (25.52, 0.7785)}},
    {"method": "HiNAS, R1", "metrics": {"Set5": (31.70, 0.8926), "B100": (27.34, 0.7458), "Urban100": (25.52, 0.7782)}},
    {"method": "HiNAS, R2", "metrics": {"Set5": (31.58, 0.8821), "B100": (27.13, 0.7312), "Urban100": (25.13, 0.7585)}},
]

# Table 8: NAS methods for denoising; cell sharing on/off and search cost (GPU hours).
TABLE8_NAS_DENOISE = [
    {"method": "E-CAE", "cell_sharing": None, "params_m": "1.10", "metrics": _dn(28.23, 0.8047, 26.17, 0.7255, 24.83, 0.6636),
     "search_gpu_hours": 44.0, "gpus": "4 V100", "search": "EA"},
    {"method": "HiNAS", "cell_sharing": False, "params_m": "0.23-0.34", "metrics": _dn(29.21, 0.8403, 26.75, 0.7620, 25.38, 0.7049),
     "search_gpu_hours": 3.6, "gpus": "1 GTX 1080Ti", "search": "gradient"},
    {"method": "HiNAS", "cell_sharing": True, "params_m": "0.22-0.34", "metrics": _dn(29.23, 0.8411, 26.81, 0.7649, 25.43, 0.7069),
     "search_gpu_hours": 1.0, "gpus": "1 GTX 1080Ti", "search": "gradient"},
]

# Table 9: NAS methods for SR (x2, DIV2K).
TABLE9_NAS_SR = [
    {"method": "MoreMNAS", "cell_sharing": None, "params_m": "1.04",
     "metrics": {"Set5": (37.63, 0.9584), "B100": (31.95, 0.8961), "Urban100": (31.24, 0.9187)}, "search_gpu_hours": 168, "gpus": "8 V100"},
    {"method": "FALSR", "cell_sharing": None, "params_m": "0.41",
     "metrics": {"Set5": (37.66, 0.9586), "B100": (31.96, 0.8965), "Urban100": (31.24, 0.9187)}, "search_gpu_hours": 72, "gpus": "8 V100"},
    {"method": "HiNAS", "cell_sharing": False, "params_m": "0.24-0.28",
     "metrics": {"Set5": (37.66, 0.9606), "B100": (31.98, 0.9036), "Urban100": (31.27, 0.9233)}, "search_gpu_hours": 12.6, "gpus": "1 GTX 1080Ti"},
    {"method": "HiNAS", "cell_sharing": True, "params_m": "0.23-0.28",
     "metrics": {"Set5": (37.65, 0.9608), "B100": (31.97, 0.9036), "Urban100": (31.29, 0.9236)}, "search_gpu_hours": 3.5, "gpus": "1 GTX 1080Ti"},
]

# Table 10: denoising SOTA on BSD200 (grey); time = GPU-seconds for the 200 images on a GTX 1080Ti.
TABLE10_DENOISE_SOTA = [
    {"method": "BM3D", "params_m": None, "time_s": None, "metrics": _dn(27.31, 0.7755, 25.06, 0.6831, 23.82, 0.6240)},
    {"method": "WNNM", "params_m": None, "time_s": None, "metrics": _dn(27.48, 0.7807, 25.26, 0.6928, 23.95, 0.3460)},
    {"method": "RED", "params_m": None, "time_s": None, "metrics": _dn(27.95, 0.8056, 25.75, 0.7167, 24.37, 0.6551)},
    {"method": "MemNet", "params_m": 0.68, "time_s": 32.67, "metrics": _dn(28.04, 0.8053, 25.86, 0.7202, 24.53, 0.6608)},
    {"method": "NLRN", "params_m": 1.03, "time_s": 6940.67, "metrics": _dn(28.15, 0.8423, 25.93, 0.7214, 24.58, 0.6614)},
    {"method": "E-CAE", "params_m": 1.10, "time_s": None, "metrics": _dn(28.23, 0.8047, 26.17, 0.7255, 24.83, 0.6636)},
    {"method": "DBSN", "params_m": 6.61, "time_s": 127.56, "metrics": {50: (26.18, 0.7257)}},
    {"method": "DuRN-P", "params_m": 0.82, "time_s": None, "metrics": _dn(28.50, 0.8156, 26.36, 0.7350, 25.05, 0.6755)},
    {"method": "N3Net", "params_m": 0.71, "time_s": 80.74, "metrics": _dn(28.66, 0.8220, 26.50, 0.7490, 25.18, 0.6960)},
    {"method": "HiNAS", "params_m": "0.22-0.34", "time_s": 16.21, "metrics": _dn(29.23, 0.8411, 26.81, 0.7649, 25.43, 0.7069)},
]

# Table 11: x3 SR SOTA; time = GPU-seconds for the 100 B100 images on a GTX 1080Ti.
_SR_SETS = ("Set5", "Set14", "B100", "Urban100")


def _sr(*vals):
    return {name: (vals[2 * i], vals[2 * i + 1]) for i, name in enumerate(_SR_SETS)}


TABLE11_SR_SOTA = [
    {"method": "EDSR", "params_m": 43.00, "time_s": None, "metrics": _sr(34.65, 0.9280, 30.52, 0.8462, 29.25, 0.8093, 28.80, 0.8653)},
    {"method": "SRMD", "params_m": 1.50, "time_s": None, "metrics": _sr(34.12, 0.9254, 30.04, 0.8382, 28.97, 0.8025, 27.57, 0.8398)},
    {"method": "RDN", "params_m": 22.30, "time_s": 11.89, "metrics": _sr(34.71, 0.9296, 30.57, 0.8468, 29.26, 0.8093, 28.80, 0.8653)},
    {"method": "RCAN", "params_m": 16.00, "time_s": 14.60, "metrics": _sr(34.74, 0.9299, 30.64, 0.8481, 29.32, 0.8111, 29.08, 0.8702)},
    {"method": "SAN", "params_m": 15.70, "time_s": 34.59, "metrics": _sr(34.75, 0.9300, 30.59, 0.8476, 29.33, 0.8112, 28.93, 0.8671)},
    {"method": "RFANet", "params_m": 11.00, "time_s": None, "metrics": _sr(34.79, 0.9300, 30.67, 0.8487, 29.34, 0.8115, 29.10, 0.8720)},
    {"method": "bicubic", "params_m": None, "time_s": None, "metrics": _sr(30.39, 0.8682, 27.55, 0.7742, 27.21, 0.7385, 24.46, 0.7349)},
    {"method": "FSRCNN(KD)", "params_m": 0.013, "time_s": 0.58, "metrics": _sr(33.31, 0.9179, 29.57, 0.8276, 28.61, 0.7919, 26.67, 0.8153)},
    {"method": "VDSR", "params_m": 0.67, "time_s": None, "metrics": _sr(33.67, 0.9210, 29.78, 0.8320, 28.83, 0.7990, 27.14, 0.8290)},
    {"method": "LapSRN", "params_m": 0.50, "time_s": 2.94, "metrics": _sr(33.82, 0.9227, 29.87, 0.8320, 28.82, 0.7980, 27.07, 0.8280)},
    {"method": "MemNet", "params_m": 0.68, "time_s": 7.37, "metrics": _sr(34.09, 0.9248, 30.01, 0.8350, 28.96, 0.8001, 27.56, 0.8376)},
    {"method": "IDN", "params_m": 0.55, "time_s": 2.90, "metrics": _sr(34.11, 0.9253, 29.99, 0.8354, 28.95, 0.8013, 27.42, 0.8359)},
    {"method": "IMDN", "params_m": 0.70, "time_s": 1.91, "metrics": _sr(34.36, 0.9270, 30.32, 0.8417, 29.09, 0.8046, 28.17, 0.8519)},
    {"method": "HiNAS", "params_m": "0.25-0.30", "time_s": 1.59, "metrics": _sr(33.95, 0.9265, 29.59, 0.8465, 28.84, 0.8135, 27.44, 0.8448)},
]

# The bicubic SR baseline as published across the SR literature (MATLAB imresize, PSNR/SSIM on the
# Y channel of BT.601 YCbCr, ``scale`` pixels of border cropped), per scale; x3 is Table 11's row.
BICUBIC_SR = {
    2: _sr(33.66, 0.9299, 30.24, 0.8688, 29.56, 0.8431, 26.88, 0.8403),
    3: _sr(30.39, 0.8682, 27.55, 0.7742, 27.21, 0.7385, 24.46, 0.7349),
    4: _sr(28.42, 0.8104, 26.00, 0.7027, 25.96, 0.6675, 23.14, 0.6577),
}


def bicubic_rows() -> list[dict]:
    """:data:`BICUBIC_SR` as one flat dict per (scale, dataset) with ``psnr``, ``ssim`` and
    ``source='published'``."""
    return [{"dataset": name, "scale": scale, "psnr": psnr, "ssim": ssim, "source": "published"}
            for scale, sets in BICUBIC_SR.items() for name, (psnr, ssim) in sets.items()]


TABLES = {
    "table1": TABLE1_DENOISE_ABLATION, "table2": TABLE2_SR_ABLATION, "table3": TABLE3_WIDTHS,
    "table4": TABLE4_LOSS_DENOISE, "table5": TABLE5_LOSS_SR, "table6": TABLE6_ARCH_DENOISE,
    "table7": TABLE7_ARCH_SR, "table8": TABLE8_NAS_DENOISE, "table9": TABLE9_NAS_SR,
    "table10": TABLE10_DENOISE_SOTA, "table11": TABLE11_SR_SOTA,
}


def flat_rows(table: str) -> list[dict]:
    """One flat dict per (row, dataset or sigma) with ``psnr``/``ssim`` and ``source='published'``,
    ready for ``pandas.DataFrame``."""
    out = []
    for row in TABLES[table]:
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
