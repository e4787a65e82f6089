"""Registries of optimizers and learning-rate schedules (stepped once per batch)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler


def _sgd(params, cfg) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)


def _adam(params, cfg) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _adamw(params, cfg) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


OPTIMIZERS: dict[str, Callable] = {"sgd": _sgd, "adam": _adam, "adamw": _adamw}


def _constant(opt, cfg, total_steps, steps_per_epoch) -> LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _step(opt, cfg, total_steps, steps_per_epoch) -> LRScheduler:
    return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_epochs * steps_per_epoch, gamma=cfg.gamma)


def _multistep(opt, cfg, total_steps, steps_per_epoch) -> LRScheduler:
    milestones = [m * steps_per_epoch for m in cfg.milestones]
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg.gamma)


def _cosine(opt, cfg, total_steps, steps_per_epoch) -> LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps))


def _onecycle(opt, cfg, total_steps, steps_per_epoch) -> LRScheduler:
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(2, total_steps))


SCHEDULERS: dict[str, Callable] = {
    "none": _constant,
    "step": _step,
    "multistep": _multistep,
    "cosine": _cosine,
    "onecycle": _onecycle,
}


def epoch_steps(examples: int, batch_size: int) -> int:
    """Batches in one epoch: every example once, but a last batch of a single example after full ones is left out
    (BatchNorm cannot normalise a batch of one; the engine refuses batches of one for the models that need more)."""
    return max(1, examples // batch_size if examples % batch_size == 1 else -(-examples // batch_size))


def build_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    return OPTIMIZERS[cfg.optimizer](model.parameters(), cfg)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg, steps_per_epoch: int) -> LRScheduler:
    """The schedule of `cfg`, expressed in batches so every kind can be plotted per step."""
    return SCHEDULERS[cfg.scheduler](optimizer, cfg, cfg.epochs * steps_per_epoch, steps_per_epoch)


def lr_curve(cfg, steps_per_epoch: int) -> list[float]:
    """The learning rate at every step of `cfg`'s schedule, without training anything."""
    param = nn.Parameter(torch.zeros(1))
    opt = build_optimizer(nn.ParameterList([param]), cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    rates = []
    for _ in range(cfg.epochs * steps_per_epoch):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


PREVIEW_STEPS = 2000  # the most steps a schedule's preview takes: no chart is wider


def lr_preview(cfg, steps_per_epoch: int) -> tuple[list[float], list[float]]:
    """(epochs, learning rates) of `cfg`'s schedule for a chart, in at most about PREVIEW_STEPS steps: every
    schedule is written in epochs or in fractions of the run, so fewer steps per epoch draw the same curve (a
    link to batch 1 and 500 epochs would otherwise step 27 million times before the page shows)."""
    per_epoch = max(1, min(steps_per_epoch, PREVIEW_STEPS // cfg.epochs))
    rates = lr_curve(cfg, per_epoch)
    return [step / per_epoch for step in range(len(rates))], rates
