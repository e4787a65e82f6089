"""Which device to train on, and how to name it for a person."""

from __future__ import annotations

import torch


def mps_available() -> bool:
    """Apple's Metal GPU (a Mac with Apple silicon)."""
    return torch.backends.mps.is_available()


def resolve_device(choice: str = "auto") -> torch.device:
    """'auto' is a CUDA GPU when present, else Apple's MPS, else the CPU; a GPU asked for but absent is refused."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for, but no CUDA GPU is available here: choose the device auto or cpu.")
    if choice == "mps" and not mps_available():
        raise ValueError("Apple's MPS was asked for, but it is not available here: choose the device auto or cpu.")
    return torch.device(choice)


def device_label(choice: str) -> str:
    """What a run set to `choice` trains on here, for a page: the device's name, or that this machine lacks it."""
    try:
        return describe_device(resolve_device(choice))
    except ValueError:
        return f"{choice.upper()}, which this machine does not have (choose auto or cpu on the Model page)"


def describe_device(device: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3' or 'CPU, 2 threads'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU, {torch.get_num_threads()} threads"
