import numpy as np
import pytest
import torch

from hinas.data import PatchDataset, add_noise_seeded, load_dataset, search_split, task_datasets
from hinas.errors import DataError


def test_embedded_split_and_flags():
    ds = load_dataset("embedded-train")
    assert ds.embedded and not ds.comparable_with_paper and len(ds) == 7
    w, a, v = search_split(ds)
    assert len(v) >= 1 and len(w) >= 1 and len(a) >= 1 and len(w) + len(a) + len(v) == 7


def test_patch_dataset_deterministic():
    recs = load_dataset("embedded-train", grey=True).records
    pd = PatchDataset(recs, "denoise", sigma=[30, 50, 70], seed=3)
    x1, y1 = pd[2]
    pd.set_epoch(1)
    x2, _ = pd[2]
    pd.set_epoch(0)
    x3, y3 = pd[2]
    assert x1.shape == (1, 64, 64) and torch.equal(x1, x3) and torch.equal(y1, y3) and not torch.equal(x1, x2)
    rgb = [r for r in load_dataset("embedded-train").records if r.image.ndim == 3]
    lr, hr = PatchDataset(rgb, "sr", scale=2)[0]
    assert lr.shape == (3, 64, 64) and hr.shape == (3, 128, 128)
    with pytest.raises(DataError):
        PatchDataset(load_dataset("embedded-train").records, "sr", scale=2)  # grey members


def test_seeded_noise_independent_of_order():
    a = np.zeros((8, 8), np.float32)
    assert np.array_equal(add_noise_seeded(a, 50, "x"), add_noise_seeded(a, 50, "x"))
    assert not np.array_equal(add_noise_seeded(a, 50, "x"), add_noise_seeded(a, 50, "y"))


@pytest.mark.data
def test_reference_search_split(real_data_root):
    w, a, v = search_split(task_datasets("denoise", real_data_root)["train"])
    assert (len(w), len(a)) == (147, 147)
    assert [r.name for r in v] == ["90076", "92059", "94079", "95006", "97017", "97033"]
