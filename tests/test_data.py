"""Built-in datasets through torchvision: archives, md5 checks, download, offline message, CIFAR-10."""

from __future__ import annotations

import functools
import http.server
import pickle
import shutil
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ARCHIVES
from torchvision import datasets as tv_datasets

from core import data
from core.data import (
    DatasetUnavailable,
    install_from_archives,
    load_dataset,
    train_val_split,
)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _fresh_load(name, root):
    """Bypass the per-process cache: these tests are about what happens on disk."""
    data._load_cached.cache_clear()
    return load_dataset(name, root)


def test_mnist_tensors_and_statistics(mnist):
    assert mnist.train_images.shape == (60000, 1, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10000, 1, 28, 28)
    assert mnist.train_labels.bincount().tolist() == MNIST_TRAIN_COUNTS
    assert mnist.mean[0] == pytest.approx(0.1307, abs=1e-4)
    assert mnist.std[0] == pytest.approx(0.3081, abs=1e-4)
    assert len(mnist.class_names) == 10


def test_second_load_is_the_cached_object(mnist):
    assert load_dataset("mnist") is mnist


def test_fashion_mnist_is_balanced():
    fashion = load_dataset("fashion-mnist")
    assert fashion.train_labels.bincount().tolist() == [6000] * 10
    assert fashion.test_labels.bincount().tolist() == [1000] * 10
    assert fashion.class_names[0] == "T-shirt/top"


def test_corrupted_archive_is_refused_by_name(tmp_path):
    archives = tmp_path / "archives"
    shutil.copytree(ARCHIVES / "mnist", archives / "mnist")
    bad = archives / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(bad.read_bytes())
    raw[100] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(DatasetUnavailable, match="t10k-labels-idx1-ubyte.gz is corrupted"):
        install_from_archives("mnist", tmp_path / "root", archives)
    assert not (tmp_path / "root" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_and_nothing_found_names_files_and_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("PLAYGROUND_ARCHIVE_DIR")
    monkeypatch.setattr(tv_datasets.MNIST, "mirrors", [f"http://127.0.0.1:{_closed_port()}/"])
    with pytest.raises(DatasetUnavailable) as err:
        _fresh_load("mnist", tmp_path)
    message = str(err.value)
    for needed in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "PLAYGROUND_ARCHIVE_DIR", "PLAYGROUND_DATA_DIR", str(tmp_path)):
        assert needed in message


def test_real_download_path_from_a_local_mirror(tmp_path, monkeypatch):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ARCHIVES))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("PLAYGROUND_ARCHIVE_DIR")
        monkeypatch.setattr(tv_datasets.FashionMNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/fashion-mnist/"])
        fashion = _fresh_load("fashion-mnist", tmp_path)
    finally:
        server.shutdown()
        data._load_cached.cache_clear()
    assert fashion.train_images.shape == (60000, 1, 28, 28)
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def _write_cifar_archive(folder: Path, per_batch: int = 20) -> tuple[np.ndarray, list[int]]:
    """A tiny CIFAR-10 in the official layout: pickled batches in cifar-10-batches-py/, tarred and gzipped.

    The official files are Python 2 pickles whose str keys load as str with
    encoding='latin1' (torchvision's reader), so this writes str keys too.
    """
    rng = np.random.default_rng(0)
    src = folder / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    first_batch = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pixels = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        if first_batch is None:
            first_batch = (pixels, labels)
        with open(src / name, "wb") as f:
            pickle.dump({"data": pixels, "labels": labels, "batch_label": name,
                         "filenames": [f"{i}.png" for i in range(per_batch)]}, f, protocol=2)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(src / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch}, f, protocol=2)
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    return first_batch


def test_cifar10_path_on_a_small_official_layout(tmp_path, monkeypatch):
    from torchvision.datasets.utils import calculate_md5

    archives = tmp_path / "archives"
    archives.mkdir()
    pixels, labels = _write_cifar_archive(archives)
    # torchvision checks every file against the md5s of the real CIFAR-10; point them at ours.
    src = tmp_path / "archives" / "src" / "cifar-10-batches-py"
    monkeypatch.setattr(tv_datasets.CIFAR10, "tgz_md5", calculate_md5(str(archives / "cifar-10-python.tar.gz")))
    monkeypatch.setattr(tv_datasets.CIFAR10, "train_list", [[f"data_batch_{i}", calculate_md5(str(src / f"data_batch_{i}"))] for i in range(1, 6)])
    monkeypatch.setattr(tv_datasets.CIFAR10, "test_list", [["test_batch", calculate_md5(str(src / "test_batch"))]])
    monkeypatch.setattr(tv_datasets.CIFAR10, "meta", {**tv_datasets.CIFAR10.meta, "md5": calculate_md5(str(src / "batches.meta"))})
    monkeypatch.setenv("PLAYGROUND_ARCHIVE_DIR", str(archives))
    try:
        cifar = _fresh_load("cifar10", tmp_path / "root")
    finally:
        data._load_cached.cache_clear()
    assert cifar.train_images.shape == (100, 3, 32, 32) and cifar.test_images.shape == (20, 3, 32, 32)
    assert cifar.class_names[0] == "airplane" and cifar.num_classes == 10
    # the R, G, B planes of the first image land in channels 0, 1, 2
    expected = torch.from_numpy(pixels[0].reshape(3, 32, 32))
    assert torch.equal(cifar.train_images[0], expected)
    assert cifar.train_labels[:20].tolist() == labels
    assert len(cifar.mean) == 3 and all(0.4 < m < 0.6 for m in cifar.mean)


def test_unknown_dataset_is_refused():
    with pytest.raises(DatasetUnavailable, match="Unknown dataset"):
        load_dataset("imagenet")


def test_validation_split_is_seeded_and_disjoint():
    train_a, val_a = train_val_split(1000, 0.1, seed=3)
    train_b, val_b = train_val_split(1000, 0.1, seed=3)
    _, val_c = train_val_split(1000, 0.1, seed=4)
    assert torch.equal(val_a, val_b) and torch.equal(train_a, train_b)
    assert not torch.equal(val_a, val_c)
    assert len(val_a) == 100 and len(train_a) == 900
    assert set(train_a.tolist()).isdisjoint(val_a.tolist())
    assert sorted(train_a.tolist() + val_a.tolist()) == list(range(1000))


def test_visitors_arriving_together_share_one_load_of_a_dataset(mnist):
    import threading

    from core.data import _load_cached, load_dataset

    _load_cached.cache_clear()
    loaded = []
    threads = [threading.Thread(target=lambda: loaded.append(load_dataset("mnist"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loaded) == 4 and all(d is loaded[0] for d in loaded)  # one copy in memory, not four


def test_channel_stats_from_histograms_match_the_float_computation():
    from core.data import channel_stats

    images = torch.randint(0, 256, (300, 3, 7, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    per_channel = images.transpose(0, 1).reshape(3, -1).double() / 255
    mean, std = channel_stats(images)
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), per_channel.mean(1), rtol=0, atol=1e-12)
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), per_channel.std(1), rtol=0, atol=1e-12)
