"""Test set-up: the official archives in ../shared/data/archives, unpacked once per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests of every door: a bounded run in CI; HYPOTHESIS_PROFILE=thorough for the long one
# (add --hypothesis-show-statistics to see how many cases each door accepted and refused).
for profile, examples in (("ci", 150), ("thorough", 3000)):
    settings.register_profile(profile, max_examples=examples, deadline=None,
                              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
ARCHIVES = Path(os.environ.get("PLAYGROUND_ARCHIVE_DIR", REPO.parent / "shared" / "data" / "archives")).resolve()

# Set before any test imports core, so subprocesses and AppTest scripts see the same folders.
os.environ["PLAYGROUND_ARCHIVE_DIR"] = str(ARCHIVES)
os.environ.setdefault("PLAYGROUND_DATA_DIR", tempfile.mkdtemp(prefix="playground-data-"))
os.environ.setdefault("PLAYGROUND_RUNS_DIR", tempfile.mkdtemp(prefix="playground-runs-"))


@pytest.fixture(scope="session")
def mnist():
    from core.data import load_dataset

    if not (ARCHIVES / "mnist").is_dir():
        pytest.fail(f"The MNIST archives are not at {ARCHIVES}; set PLAYGROUND_ARCHIVE_DIR.")
    return load_dataset("mnist")


@pytest.fixture(scope="session")
def small_mnist(mnist):
    """3,000 training and 1,000 test images of real MNIST: enough to beat chance clearly in seconds."""
    from core.data import ImageDataset

    return ImageDataset(
        name="mnist-small",
        train_images=mnist.train_images[:3000],
        train_labels=mnist.train_labels[:3000],
        test_images=mnist.test_images[:1000],
        test_labels=mnist.test_labels[:1000],
        class_names=mnist.class_names,
        mean=mnist.mean,
        std=mnist.std,
    )


@pytest.fixture(scope="session", autouse=True)
def no_worker_outlives_the_tests():
    """Workers started through the app's scheduler in this process end with the test session."""
    yield
    from core.scheduler import shutdown

    shutdown()
