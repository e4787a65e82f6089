"""Taking a run elsewhere: a zip, an uploaded checkpoint zip, ONNX, and a standalone script."""

from __future__ import annotations

import csv
import inspect
import io
import json
import pprint
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from core import augment, models, optim, preprocess
from core.archives import check_member, is_hidden, member_path, open_zip, read_member
from core.checkpoint import MAX_DESCRIPTION_BYTES, MAX_WEIGHTS_BYTES, Checkpoint, CheckpointError, load_checkpoint
from core.config import TrainConfig
from core.data import DATASETS
from core.predict import OnUnitPixels
from core.store import RunStatus, RunStore, runs_dir

MAX_UPLOAD_BYTES = 512 << 20


def _csv(rows: list[dict]) -> str:
    """One column per field; a step's layer numbers as conv1.mean, conv1.std, conv1.grad_norm, ... (blank on the
    steps that did not record them)."""
    if not rows:
        return ""
    flat = [{**{k: v for k, v in row.items() if k != "layers"},
             **{f"{layer}.{name}": value for layer, numbers in row.get("layers", {}).items() for name, value in numbers.items()}}
            for row in rows]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(dict.fromkeys(k for row in flat for k in row)))
    writer.writeheader()
    writer.writerows(flat)
    return out.getvalue()


def run_zip(store: RunStore) -> bytes:
    """config.json, metrics as CSV, the best weights (safetensors + JSON) and the test report."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps(store.config().to_dict(), indent=1))
        z.writestr("status.json", json.dumps(store.status(), indent=1))
        z.writestr("epochs.csv", _csv(store.epochs()))
        z.writestr("steps.csv", _csv(store.steps()))
        for name in ("best.safetensors", "best.json", "evaluation.json"):
            if (store.path / name).is_file():
                z.write(store.path / name, name)
    return buffer.getvalue()


def import_checkpoint_zip(data: bytes, name: str, root: Path | None = None) -> RunStore:
    """A checkpoint zip (as run_zip makes) becomes a run of its own, for Results and Draw.

    Only `best.safetensors` and `best.json` are read from it, never a pickle; the
    pair must rebuild its model, or the upload is refused with the reason.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise CheckpointError(f"{name} is larger than {MAX_UPLOAD_BYTES >> 20} MB.")
    archive = open_zip(data, name, CheckpointError)
    limits = {"best.safetensors": MAX_WEIGHTS_BYTES, "best.json": MAX_DESCRIPTION_BYTES}
    with archive:
        found: dict[str, list[zipfile.ZipInfo]] = {}
        for member in archive.infolist():
            path = member_path(member)
            if path.name in limits and not member.is_dir() and not is_hidden(path):
                found.setdefault(path.name, []).append(member)
        if set(found) != set(limits):
            raise CheckpointError(f"{name} holds no best.safetensors with its best.json: download a run's zip from the Runs page.")
        if any(len(members) > 1 for members in found.values()):
            raise CheckpointError(f"{name} holds more than one checkpoint; upload one run's zip at a time.")
        with tempfile.TemporaryDirectory(prefix="playground-checkpoint-") as tmp:
            for member_name, (member,) in found.items():
                check_member(member, name, CheckpointError, max_bytes=limits[member_name])
                (Path(tmp) / member_name).write_bytes(read_member(archive, member, name, CheckpointError))
            checkpoint = load_checkpoint(Path(tmp) / "best.safetensors")
            meta = checkpoint.meta
            try:
                cfg = TrainConfig.from_dict(meta.get("config") or {"model": meta["model"]}).validate()
            except ValueError as exc:
                raise CheckpointError(f"{name}: best.json's config is not one this version can use ({exc}).") from None
            if cfg.model != meta["model"]:
                raise CheckpointError(f"{name}: best.json's config trains a {cfg.model}, but its weights are a {meta['model']}.")
            # a zip names its dataset: only a built-in one is ever looked up, never a path on this machine
            dataset = meta.get("dataset") or (cfg.dataset if meta.get("config") else "unknown")
            cfg.dataset = dataset if dataset in DATASETS else f"{Path(dataset).name[:80] or 'data'} (imported)"
            store = RunStore.create(cfg, cfg.dataset, root=root or runs_dir(), name=name[:120],
                                    status=RunStatus.IMPORTED, message=f"Imported from {name}", pid=None, pid_start=None)
            for member in ("best.safetensors", "best.json"):
                (store.path / member).write_bytes((Path(tmp) / member).read_bytes())
    store.update_status(status=RunStatus.IMPORTED, message=f"Imported from {name}", checkpoint=str(store.best_checkpoint),
                        test_accuracy=None, pid=None)
    return store


def to_onnx(checkpoint: Checkpoint, path: Path) -> Path:
    """Export to ONNX: input `images` N x C x H x W on [0, 1], output `probabilities` N x K."""
    model = nn.Sequential(OnUnitPixels.of(checkpoint), nn.Softmax(dim=1)).eval()  # answers as the run's predictions
    example = torch.rand(2, *checkpoint.meta["input_shape"])
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(model, (example,), str(path), input_names=["images"], output_names=["probabilities"],
                      dynamic_shapes=({0: batch},), dynamo=True, verbose=False)
    return path


SCRIPT_MAIN = '''
def load(name, root):
    """torchvision's dataset as uint8 N x C x H x W tensors."""
    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]
    out = []
    for train in (True, False):
        ds = cls(root, train=train, download=True)
        images = torch.as_tensor(ds.data)
        images = images.permute(0, 3, 1, 2) if images.ndim == 4 else images.unsqueeze(1)
        out += [images.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="data", help="torchvision dataset root")
    parser.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    parser.add_argument("--limit-train", type=int, default=CONFIG["limit_train"])
    args = parser.parse_args()
    cfg = SimpleNamespace(**{**CONFIG, "epochs": args.epochs})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_x, train_y, test_x, test_y = load(cfg.dataset, args.data)
    unit = train_x.float() / 255
    normalize = Normalizer(*input_stats(cfg.input_scaling, unit.mean((0, 2, 3)).tolist(), unit.std((0, 2, 3)).tolist()),
                           device)
    perm = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(cfg.seed))
    n_val = int(round(len(train_y) * cfg.val_split))
    train_idx, val_idx = perm[n_val:].sort().values, perm[:n_val].sort().values
    if args.limit_train:
        train_idx = train_idx[:args.limit_train]
    images, labels = train_x.to(device), train_y.to(device)
    train_idx, val_idx = train_idx.to(device), val_idx.to(device)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, tuple(train_x.shape[1:]), int(train_y.max()) + 1, cfg.init, cfg.hidden).to(device)
    fit_to_data(model, lambda: normalize(images[train_idx[:WHITENING_IMAGES]].float() / 255))  # airbench's whitening
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    optimizer = build_optimizer(model, cfg)
    steps_per_epoch = epoch_steps(len(train_idx), cfg.batch_size)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def accuracy(x_u8, y):
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(y), 1000):
                x = normalize(x_u8[i:i + 1000].to(device).float() / 255)
                logits = TEST_TIME_AUGMENTATIONS[cfg.tta](model, x)  # the run's test-time augmentation
                correct += (logits.argmax(1) == y[i:i + 1000].to(device)).sum().item()
        return correct / max(1, len(y))

    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = train_idx[torch.randperm(len(train_idx), device=device, generator=gen)]
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = images[idx].float() / 255
            if cfg.augment:
                x = augment_batch(x, tuple(cfg.augment), gen, cfg.rotate_degrees)
            loss = criterion(model(normalize(x)), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
        val = f", val accuracy {accuracy(images[val_idx], labels[val_idx]):.4f}" if len(val_idx) else ""
        print(f"epoch {epoch}: train loss {total / min(len(train_idx), steps_per_epoch * cfg.batch_size):.4f}{val}")
    print(f"test accuracy {accuracy(test_x, test_y):.4f}")


if __name__ == "__main__":
    main()
'''


def _module_body(module) -> str:
    """A module's source without its docstring and `from __future__` line, to embed in a script."""
    source = inspect.getsource(module)
    lines = [line for line in source.splitlines() if not line.startswith("from __future__")]
    body = "\n".join(lines)
    docstring = inspect.getdoc(module)
    if docstring and body.lstrip().startswith('"""'):
        body = body.split('"""', 2)[2]
    return body.strip()


def standalone_script(cfg: TrainConfig, title: str) -> str:
    """One Python file that retrains `cfg` with only PyTorch and torchvision, and prints test accuracy.

    The model zoo, the augmentations and the optimizer/schedule registries are
    copied in from their modules (they depend on torch and torchvision only), so
    the script trains exactly the architecture the run trained.
    """
    if cfg.dataset not in DATASETS:
        raise ValueError("Only runs on a built-in dataset can be exported as a script.")
    parts = [
        f'"""Retrain {title} with plain PyTorch and torchvision: python this_file.py --data DATA_ROOT\n\n'
        f'Generated by ConvNet Playground from the run\'s config; no dependency on the playground."""',
        "from __future__ import annotations",
        "import argparse\nimport math\nfrom types import SimpleNamespace\nfrom torchvision import datasets",
        f"CONFIG = {pprint.pformat(cfg.to_dict(), sort_dicts=False)}",
        "# --- the model zoo (core/models.py) ---", _module_body(models),
        "# --- batch augmentation (core/augment.py) ---", _module_body(augment),
        "# --- optimizers and schedules (core/optim.py) ---", _module_body(optim),
        "# --- input scaling (core/preprocess.py) ---", _module_body(preprocess),
        SCRIPT_MAIN.strip(),
    ]
    return "\n\n\n".join(parts) + "\n"


def write_run_script(store: RunStore, path: Path) -> Path:
    path.write_text(standalone_script(store.config(), f"run {store.id}"))
    return path

