"""TensorBoard event files in each run folder, so `tensorboard --logdir runs` shows every run."""

from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from core.events import EpochEvent, StepEvent


HISTOGRAM_RANGE = 1e12  # TensorBoard's default bins end near 1e12: values beyond leave the histogram empty, an error


class TensorBoard:
    """The scalars of one run: per-step loss and learning rate, per-epoch losses and accuracies."""

    def __init__(self, folder: Path, purge_step: int | None = None) -> None:
        # purge_step drops events past the last checkpoint when an interrupted run resumes
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)

    def step(self, event: StepEvent) -> None:
        """A reported step: loss and learning rate; per layer its activations' mean and std, its gradient's norm
        (scalars) and its activations (a histogram)."""
        self.writer.add_scalar("step/train_loss", event.loss, event.step)
        self.writer.add_scalar("step/learning_rate", event.lr, event.step)
        for layer, numbers in (event.layers or {}).items():
            for name, value in numbers.items():
                if value is not None:
                    self.writer.add_scalar(f"layers/{layer}/{name}", value, event.step)
        for layer, values in (event.activations or {}).items():
            if bool(values.isfinite().all()) and float(values.abs().max()) < HISTOGRAM_RANGE:  # a diverging layer has none
                self.writer.add_histogram(f"activations/{layer}", values, event.step)

    def epoch(self, record: EpochEvent) -> None:
        values = {"train_loss": record.train_loss, "train_accuracy": record.train_accuracy,
                  "val_loss": record.val_loss, "val_accuracy": record.val_accuracy,
                  "test_loss": record.test_loss, "test_accuracy": record.test_accuracy}
        for name, value in values.items():
            if value is not None:
                self.writer.add_scalar(f"epoch/{name}", value, record.epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
