"""Which device to train on, and how to name it for a person."""

from __future__ import annotations

import torch


def resolve_device(choice: str = "auto") -> torch.device:
    """'auto' is CUDA when a GPU is present, else the CPU; 'cuda' without a GPU is refused."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for, but no CUDA GPU is available here; use --device cpu or auto.")
    return torch.device(choice)


def describe_device(device: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3' or 'CPU, 2 threads'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"
