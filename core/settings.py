"""What the host of a shared server decides: who sees which runs, the teacher key, the queue and the quotas.

Each setting comes from an environment variable, else from the `[playground]`
table of `.streamlit/secrets.toml` (the key in lower case without the prefix),
else its default. The defaults keep a 2-core server usable for a class; the
local workspace (a laptop, the command line) has no quotas.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

SECRETS = Path(".streamlit/secrets.toml")
WORKSPACE_MODES = ("auto", "private", "local")


@dataclass(frozen=True)
class HostSettings:
    workspaces: str = "auto"  # auto: visitors on this machine share the local workspace, others get a private one
    teacher_key: str = ""  # opens the Teacher page; empty: no teacher view
    runs_per_cpu: int = 1  # runs training at once on the CPU
    runs_per_gpu: int = 1  # runs training at once on the GPU
    worker_threads: int = 0  # CPU threads of each training process; 0: the machine's cores shared by the CPU slots
    max_active_runs: int = 2  # queued plus training, per workspace
    max_epochs: int = 30  # per run
    max_train_seconds: float = 900.0  # per run; a run over time stops cleanly and keeps its best checkpoint
    max_upload_mb: int = 50  # a dataset or checkpoint upload
    max_runs_kept: int = 30  # per workspace; delete old runs to start new ones
    max_parameters: int = 20_000_000  # per model; a 20M-parameter model needs about 320 MB to train with Adam
    ray_address: str = ""  # host:port of a Ray cluster (`ray start --head` prints it): runs train there (core.cluster)
    ray_gpus_per_run: float = 1.0  # what a CUDA run asks the cluster for: 0.25 lets four small runs share a GPU
    ray_cpus_per_run: int = 2  # what a CPU run asks the cluster for, and its training threads

    def threads_per_worker(self) -> int:
        """The cores shared by the CPU slots; a busy server may keep one for its pages with worker_threads."""
        if self.worker_threads > 0:
            return self.worker_threads
        return max(1, (os.cpu_count() or 1) // max(1, self.runs_per_cpu))

    def upload_refused(self, name: str, size: int, shared: bool) -> str | None:
        """Why an upload of `size` bytes is not taken (over max_upload_mb on a shared workspace), else None: a
        laptop's own workspace takes any size."""
        if not shared or size <= self.max_upload_mb << 20:
            return None
        return f"{name} is {size / 2**20:,.1f} MB; this server takes uploads of up to {self.max_upload_mb} MB. Nothing was loaded."

    @classmethod
    def load(cls) -> "HostSettings":
        """Environment (PLAYGROUND_<NAME>), then secrets.toml's [playground] table, then the defaults."""
        table: dict = {}
        try:
            table = tomllib.loads(SECRETS.read_text()).get("playground", {})
        except (OSError, tomllib.TOMLDecodeError, AttributeError):
            pass
        values = {}
        for f in fields(cls):
            raw = os.environ.get(f"PLAYGROUND_{f.name.upper()}", table.get(f.name))
            if raw is None:
                continue
            try:
                values[f.name] = type(f.default)(raw)
            except (TypeError, ValueError):
                raise ValueError(f"The host setting {f.name} (PLAYGROUND_{f.name.upper()}) must be "
                                 f"{type(f.default).__name__}, got {raw!r}.") from None
        settings = cls(**values)
        gpus = settings.ray_gpus_per_run
        if settings.ray_address and (not 0 < gpus < 1e6 or (gpus > 1 and gpus != int(gpus)) or settings.ray_cpus_per_run < 1):
            raise ValueError(f"PLAYGROUND_RAY_GPUS_PER_RUN must be a fraction of one GPU or a whole number of them "
                             f"(got {gpus:g}), and PLAYGROUND_RAY_CPUS_PER_RUN at least 1 (got {settings.ray_cpus_per_run}).")
        if settings.workspaces not in WORKSPACE_MODES:
            raise ValueError(f"PLAYGROUND_WORKSPACES must be one of {', '.join(WORKSPACE_MODES)}, got {settings.workspaces!r}.")
        return settings
