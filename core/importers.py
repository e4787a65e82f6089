"""A user's own images: a CSV in the ``mnist_train.csv`` layout, a folder of class folders, or one holding
``train/`` and ``test/`` (and ``val/``) folders of class folders; a zip of either folder.

Every importer returns the same ImageDataset as the built-in datasets: the splits of a train/test folder as
given, else a seeded 20 % held out as the test set. Malformed input is refused whole, with a message naming
the row or file; nothing is half-loaded. `import_user_data` (a path), `import_zip` and `import_upload` (bytes)
are the entry points.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.archives import checked_members, extract, open_zip
from core.data import DATASETS, MAX_CLASSES, ImageDataset, channel_stats
from core.image_folders import SPLIT_NAMES, FolderRefused, Progress, decode_all, find_splits, list_classes

if TYPE_CHECKING:
    import pandas as pd

CSV_SIDE = 28  # mnist_train.csv: a label, then 28 x 28 pixel values
CSV_COLUMNS = 1 + CSV_SIDE * CSV_SIDE
TEST_FRACTION = 0.2
SPLIT_SEED = 0


MAX_CSV_BYTES = 1 << 30  # the 60,000-image mnist_train.csv is about 110 MB


class DataImportError(ValueError):
    """The user's data was refused; the message names the row or file."""


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _dataset_from_arrays(name: str, images: torch.Tensor, labels: np.ndarray, class_names: tuple[str, ...]) -> ImageDataset:
    """Hold out a seeded test split and compute normalisation from the training part."""
    if len(class_names) < 2:
        raise DataImportError(f"{name}: only one class ({class_names[0]!r}) was found; a classifier needs at least two.")
    if len(class_names) > MAX_CLASSES:
        raise DataImportError(f"{name}: {len(class_names):,} classes, more than the {MAX_CLASSES:,} this app trains.")
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = max(1, int(round(len(labels) * TEST_FRACTION)))
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    train_images = images[train_idx].contiguous()
    mean, std = channel_stats(train_images)
    return ImageDataset(
        name=name,
        train_images=train_images,
        train_labels=labels_t[train_idx],
        test_images=images[test_idx].contiguous(),
        test_labels=labels_t[test_idx],
        class_names=class_names,
        mean=mean,
        std=tuple(max(s, 1e-6) for s in std),
    )


def _is_blank(cell: object) -> bool:
    import pandas as pd

    return bool(pd.isna(cell)) or cell == ""


def _first_rows(path: Path) -> list[list[str]]:
    """The first two lines' cells: to tell a header from data (a byte-order mark is not part of the first
    cell), and to refuse a wrong width before pandas builds a column for every field of it."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            return [row for _, row in zip(range(2), reader)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataImportError(f"{path.name}: cannot be read as a text CSV file ({exc}).") from exc


def _read_table(path: Path, skip: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the cells as read, as numbers with NaN where a cell is not one), by pandas' C reader: about 1 s for
    the 60,000 rows of mnist_train.csv, where a Python loop takes 12.

    pandas is imported here, not at the top: training from the command line never reads a CSV, and
    pandas adds about 60 MB and 0.15 s to every process that imports it.
    """
    import pandas as pd

    try:
        table = pd.read_csv(path, header=None, skiprows=skip, encoding="utf-8-sig", skip_blank_lines=True,
                            keep_default_na=False, na_values=[])  # only a short row leaves cells missing
    except pd.errors.EmptyDataError:
        raise DataImportError(f"{path.name}: no data rows.") from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found:  # pandas takes the first row's width as the table's: the odd one out is that row or this one
            width, line, saw = map(int, found.groups())
            row, columns = (line, saw) if width == CSV_COLUMNS else (skip + 1, width)
            raise DataImportError(f"{path.name}, row {row}: {columns} columns, expected {CSV_COLUMNS} "
                                  f"(a label, then {CSV_SIDE * CSV_SIDE} pixel values).") from None
        raise DataImportError(f"{path.name}: cannot be read as a text CSV file ({exc}).") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataImportError(f"{path.name}: cannot be read as a text CSV file ({exc}).") from None
    if all(kind.kind in "iuf" for kind in table.dtypes):
        return table, table
    # text somewhere (pandas reads "True" as a bool, which is not a pixel either)
    def numbers(col: pd.Series) -> pd.Series:
        try:
            return pd.to_numeric(col.astype(str) if col.dtype.kind == "b" else col, errors="coerce")
        except OverflowError:  # a whole number too long for any integer type: read cell by cell, as floats
            return col.map(lambda cell: float(str(cell)) if _is_number(str(cell)) else np.nan).astype(float)
    return table, table.apply(numbers)


def import_csv(path: str | Path) -> ImageDataset:
    """Rows of `label, p1 .. p784` (0..255), with or without a header line."""
    path = Path(path)
    expected = CSV_COLUMNS
    if not path.is_file():  # a FIFO or a device would never end
        raise DataImportError(f"{path.name}: not a regular file.")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise DataImportError(f"{path.name} is larger than {MAX_CSV_BYTES >> 20} MB.")
    rows = _first_rows(path)
    first = rows[0] if rows else []
    first_line = 1
    if first and not any(_is_number(c) for c in first):
        first_line = 2  # a header line: no cell of it is a number
    elif first and not all(_is_number(c) for c in first):
        bad = next(c for c in first if not _is_number(c))
        raise DataImportError(f"{path.name}, row 1: {bad[:40]!r} is not a number, and the row is not a header "
                              f"either (some of its cells are numbers).")
    head = rows[first_line - 1] if len(rows) >= first_line else []
    if head and len(head) != expected:
        raise DataImportError(f"{path.name}, row {first_line}: {len(head)} columns, expected {expected} "
                              f"(a label, then {CSV_SIDE * CSV_SIDE} pixel values).")
    table, numbers = _read_table(path, first_line - 1)
    if table.shape[1] != expected:  # the first data row sets the width; a longer later one is a ParserError
        raise DataImportError(f"{path.name}, row {first_line}: {table.shape[1]} columns, expected {expected} "
                              f"(a label, then {CSV_SIDE * CSV_SIDE} pixel values).")
    missing = numbers.isna().to_numpy()
    if missing.any():
        row, col = map(int, np.argwhere(missing)[0])
        columns = 1 + max((c for c in range(expected) if not _is_blank(table.iat[row, c])), default=-1)
        if columns < expected:  # pandas fills the cells a short row lacks
            raise DataImportError(f"{path.name}, row {row + first_line}: {columns} columns, expected {expected} "
                                  f"(a label, then {CSV_SIDE * CSV_SIDE} pixel values).")
        raise DataImportError(f"{path.name}, row {row + first_line}: {str(table.iat[row, col])[:40]!r} is not a number.")
    values = numbers.to_numpy()  # int64 when every cell is a whole number, as in mnist_train.csv
    outside = (values < 0) | (values > 255)
    if values.dtype.kind == "f":
        outside |= values != np.round(values)
    bad_rows = np.flatnonzero(outside.any(axis=1))
    if len(bad_rows):
        i = int(bad_rows[0])
        raise DataImportError(
            f"{path.name}, row {i + first_line}: values must be whole numbers from 0 to 255 "
            f"(labels included)."
        )
    raw_labels = values[:, 0].astype(np.int64)
    classes, labels = np.unique(raw_labels, return_inverse=True)
    images = torch.from_numpy(values[:, 1:].astype(np.uint8)).reshape(-1, 1, CSV_SIDE, CSV_SIDE)
    return _dataset_from_arrays(path.name, images, labels, tuple(str(c) for c in classes))


def _user_name(name: str) -> str:
    """A user's folder or zip never takes a built-in dataset's name (one called cifar10, say): a checkpoint names
    its data, and a checkpoint of a built-in dataset imported elsewhere is tested on that server's own copy."""
    return f"{name} (yours)" if name in DATASETS else name


def import_image_folder(path: str | Path, progress: Progress | None = None) -> ImageDataset:
    """`train/` and `test/` (and `val/`) folders of class folders, their splits kept as given; or one folder of class
    folders, with a seeded hold-out as the test set. All images of one size (grey or colour)."""
    root = Path(path)
    if not root.is_dir():
        raise DataImportError(f"{root}: not a folder.")
    try:
        splits = find_splits(root)
        if splits is None:
            files = list_classes(root, root)
            class_names = tuple(files)
            if len(class_names) < 2:
                raise FolderRefused(f"{root.name}: only one class ({class_names[0]!r}) was found; a classifier needs "
                                    f"at least two.")
            ordered = [f for names in files.values() for f in names]
            labels = np.repeat(np.arange(len(files)), [len(f) for f in files.values()])
            images = decode_all(ordered, root, progress)
            dataset = _dataset_from_arrays(_user_name(root.name), images, labels, class_names)
            return dataclasses.replace(dataset, layout=f"one folder of class folders: a seeded {TEST_FRACTION:.0%} of "
                                                       f"its images held out as the test set")
        return _split_dataset(root, splits, progress)
    except FolderRefused as exc:
        raise DataImportError(str(exc)) from None


def _split_dataset(root: Path, splits: dict[str, Path], progress: Progress | None) -> ImageDataset:
    """train/ and test/ (and val/): the classes are train/'s; test/ and val/ may lack some, never add one. Each split's
    images come in a seeded order (a folder lists them class by class, and --limit-train and the embedding take
    the first ones); train and val are decoded into one tensor, val last, within one limit of decoded pixels."""
    files = {split: list_classes(folder, root) for split, folder in splits.items()}
    class_names = tuple(files["train"])
    where = {split: f"{folder.relative_to(root.parent)}" for split, folder in splits.items()}
    if len(class_names) < 2:
        raise FolderRefused(f"{where['train']}: only one class ({class_names[0]!r}) was found; a classifier needs at least two.")
    if len(class_names) > MAX_CLASSES:
        raise FolderRefused(f"{where['train']}: {len(class_names):,} classes, more than the {MAX_CLASSES:,} this app trains.")
    for split in ("val", "test"):
        extra = sorted(set(files.get(split, {})) - set(class_names))
        if extra:
            raise FolderRefused(f"{where[split]} has class folders that {splits['train'].name}/ lacks: "
                                f"{', '.join(extra[:5])}; every class must be trained on.")

    def shuffled(split: str) -> list[tuple[Path, int]]:
        pairs = [(f, class_names.index(c)) for c, names in files.get(split, {}).items() for f in names]
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
        return [pairs[i] for i in order]

    train, val, test = shuffled("train"), shuffled("val"), shuffled("test")
    total = len(train) + len(val) + len(test)
    learn = decode_all([f for f, _ in train + val], root, progress, 0, total)
    test_images = decode_all([f for f, _ in test], root, progress, len(train) + len(val), total, learn.numel())
    if learn.shape[2:] != test_images.shape[2:]:
        (h, w), (th, tw) = learn.shape[2:], test_images.shape[2:]
        raise FolderRefused(f"{root.name}: {splits['train'].name}/ holds images of {w} x {h} but {splits['test'].name}/ "
                            f"of {tw} x {th}; all images must have one size.")
    if learn.shape[1] != test_images.shape[1]:  # one split grey, another colour: all colour
        learn, test_images = learn.expand(-1, 3, -1, -1).contiguous(), test_images.expand(-1, 3, -1, -1).contiguous()
    mean, std = channel_stats(learn[:len(train)])
    if "val" in splits:
        layout = (f"{splits['train'].name}/, {splits['val'].name}/ and {splits['test'].name}/ folders, their splits kept "
                  f"as given ({splits['val'].name}/ is the validation set)")
    elif splits["test"].name.lower() in SPLIT_NAMES["test"]:
        layout = f"{splits['train'].name}/ and {splits['test'].name}/ folders, their splits kept as given"
    else:
        layout = (f"{splits['train'].name}/ and {splits['test'].name}/ folders, their splits kept as given "
                  f"({splits['test'].name}/ is the test set)")
    return ImageDataset(
        name=_user_name(root.name), train_images=learn, train_labels=torch.tensor([label for _, label in train + val]),
        test_images=test_images, test_labels=torch.tensor([label for _, label in test], dtype=torch.long),
        class_names=class_names, mean=mean, std=tuple(max(s, 1e-6) for s in std), val_count=len(val), layout=layout)


def import_user_data(path: str | Path, progress: Progress | None = None) -> ImageDataset:
    """Pick the importer by what `path` is: a .csv file, a folder, or a .zip of a folder (as the Data page
    takes one uploaded)."""
    path = Path(path)
    if path.is_dir():
        return import_image_folder(path, progress)
    if path.suffix.lower() == ".csv":
        return import_csv(path)
    if path.suffix.lower() == ".zip":
        if path.stat().st_size > MAX_ZIP_BYTES:  # before it is read into memory
            raise DataImportError(f"{path.name}: over {MAX_ZIP_BYTES >> 30} GiB, more than this app imports.")
        return import_zip(path.read_bytes(), path.name, progress)
    raise DataImportError(f"{path}: expected a .csv file, a folder of class sub-folders or a .zip of one.")


MAX_ZIP_BYTES = 1 << 30  # unpacked size a zipped image folder may have
MAX_ZIP_FILES = 200_000


def import_zip(data: bytes, name: str, progress: Progress | None = None) -> ImageDataset:
    """A zipped image folder (class sub-folders at the top, or inside one top folder)."""
    archive = open_zip(data, name, DataImportError)
    with archive, tempfile.TemporaryDirectory(prefix="playground-upload-") as tmp:
        members = checked_members(archive, name, DataImportError, MAX_ZIP_FILES, MAX_ZIP_BYTES)
        extract(archive, members, Path(tmp), name, DataImportError)
        root = Path(tmp)
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir() and any(p.is_dir() for p in entries[0].iterdir()):
            root = entries[0]  # the zip holds one folder that holds the classes
        dataset = import_image_folder(root, progress)
    return dataclasses.replace(dataset, name=_user_name(Path(name).stem))


def import_upload(data: bytes, name: str, progress: Progress | None = None) -> ImageDataset:
    """An uploaded file by its name: a .csv in the MNIST layout or a .zip of an image folder."""
    suffix = Path(name).suffix.lower()
    if suffix == ".zip":
        return import_zip(data, name, progress)
    if suffix == ".csv":
        with tempfile.TemporaryDirectory(prefix="playground-upload-") as tmp:
            path = Path(tmp) / Path(name).name
            path.write_bytes(data)
            return import_csv(path)
    raise DataImportError(f"{name}: upload a .csv file (MNIST layout) or a .zip of class folders.")
