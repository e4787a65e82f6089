"""A user's own data: the CSV and image-folder importers, and every refusal they owe."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

from core.importers import (
    DataImportError,
    import_csv,
    import_image_folder,
    import_user_data,
)


def _rows(n: int, classes: int = 3, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[i % classes] + rng.integers(0, 256, 784).tolist() for i in range(n)]


def _write_csv(path, rows, header: bool = False):
    lines = []
    if header:
        lines.append(",".join(["label"] + [f"pixel{i}" for i in range(784)]))
    lines += [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("header", [False, True])
def test_csv_in_mnist_layout(tmp_path, header):
    rows = _rows(50)
    ds = import_csv(_write_csv(tmp_path / "mnist_train.csv", rows, header))
    assert ds.class_names == ("0", "1", "2")
    assert len(ds.train_labels) + len(ds.test_labels) == 50 and len(ds.test_labels) == 10
    assert ds.train_images.shape[1:] == (1, 28, 28)
    # every image is stored with its own label, pixel for pixel
    table = {tuple(r[1:]): r[0] for r in rows}
    for image, label in zip(ds.train_images, ds.train_labels):
        assert table[tuple(image.flatten().tolist())] == int(ds.class_names[label])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda rows: rows[3].append(7), "row 4: 786 columns, expected 785"),
        (lambda rows: rows[5].__setitem__(10, 256), "row 6: values must be whole numbers from 0 to 255"),
        (lambda rows: rows[2].__setitem__(3, -1), "row 3: values must be whole numbers"),
        (lambda rows: rows[7].__setitem__(9, "abc"), "row 8: 'abc' is not a number"),
        (lambda rows: rows[1].__setitem__(9, 3.5), "row 2: values must be whole numbers"),
    ],
)
def test_malformed_csv_names_the_row(tmp_path, mutate, message):
    rows = _rows(10)
    mutate(rows)
    with pytest.raises(DataImportError, match=message):
        import_csv(_write_csv(tmp_path / "bad.csv", rows))


def test_csv_row_numbers_count_the_header(tmp_path):
    rows = _rows(10)
    rows[0].pop()
    with pytest.raises(DataImportError, match="row 2: 784 columns"):
        import_csv(_write_csv(tmp_path / "bad.csv", rows, header=True))


def test_a_first_row_is_never_dropped_without_a_word(tmp_path):
    rows = _rows(20)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + _write_csv(tmp_path / "plain.csv", rows).read_bytes())  # Excel's UTF-8
    assert len(import_csv(bom).train_labels) + len(import_csv(bom).test_labels) == 20  # no row lost to the mark
    rows[0][5] = "x7"
    with pytest.raises(DataImportError, match="row 1: 'x7' is not a number, and the row is not a header"):
        import_csv(_write_csv(tmp_path / "odd.csv", rows))


def test_a_csv_that_is_not_a_regular_file_or_has_a_runaway_field_is_refused(tmp_path):
    import os

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataImportError, match="not a regular file"):
        import_csv(fifo)  # would block forever if opened
    (tmp_path / "quote.csv").write_text('1,"' + "9" * 200_000 + "\n")  # an unterminated quote
    with pytest.raises(DataImportError, match="cannot be read as a text CSV file"):
        import_csv(tmp_path / "quote.csv")


def test_csv_with_one_class_is_refused(tmp_path):
    with pytest.raises(DataImportError, match="only one class"):
        import_csv(_write_csv(tmp_path / "one.csv", _rows(10, classes=1)))


def test_empty_and_binary_csv_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataImportError, match="no data rows"):
        import_csv(tmp_path / "empty.csv")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81" * 100)
    with pytest.raises(DataImportError):
        import_csv(tmp_path / "binary.csv")


def _image_folder(root, sizes=None, mode="L", classes=("cat", "dog"), per_class=5):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            size = (sizes or {}).get((c, i), (16, 16))
            colour = (i * 40,) * (3 if mode == "RGB" else 1)
            Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(root / c / f"{i}.png")
    return root


def test_image_folder_grey_and_colour(tmp_path):
    grey = import_image_folder(_image_folder(tmp_path / "grey"))
    assert grey.class_names == ("cat", "dog") and grey.train_images.shape[1:] == (1, 16, 16)
    assert len(grey.train_labels) + len(grey.test_labels) == 10
    colour = import_user_data(_image_folder(tmp_path / "colour", mode="RGB"))
    assert colour.train_images.shape[1:] == (3, 16, 16)


def test_mixed_sizes_are_refused_naming_both_files(tmp_path):
    root = _image_folder(tmp_path / "mixed", sizes={("dog", 2): (20, 16)})
    with pytest.raises(DataImportError, match=r"dog/2.png is 20 x 16 but cat/0.png is 16 x 16"):
        import_image_folder(root)


def test_empty_class_and_single_class_are_refused(tmp_path):
    root = _image_folder(tmp_path / "empty")
    (root / "emu").mkdir()
    with pytest.raises(DataImportError, match="emu: this class folder holds no images"):
        import_image_folder(root)
    with pytest.raises(DataImportError, match="only one class"):
        import_image_folder(_image_folder(tmp_path / "single", classes=("cat",)))


def test_unreadable_image_is_refused_by_name(tmp_path):
    root = _image_folder(tmp_path / "broken")
    (root / "dog" / "9.png").write_bytes(b"not a png")
    with pytest.raises(DataImportError, match="dog/9.png: not a readable image"):
        import_image_folder(root)


def test_other_paths_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataImportError, match="expected a .csv file, a folder of class sub-folders or a .zip"):
        import_user_data(tmp_path / "notes.txt")


def _zip_of(folder, top: str | None = None) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for file in sorted(folder.rglob("*.png")):
            name = file.relative_to(folder).as_posix()
            z.write(file, f"{top}/{name}" if top else name)
    return buffer.getvalue()


@pytest.mark.parametrize("top", [None, "pets"])
def test_zipped_image_folder_upload(tmp_path, top):
    from core.importers import import_upload

    data = _zip_of(_image_folder(tmp_path / "pets"), top)
    ds = import_upload(data, "pets.zip")
    assert ds.name == "pets" and ds.class_names == ("cat", "dog")
    assert len(ds.train_labels) + len(ds.test_labels) == 10
    (tmp_path / "pets.zip").write_bytes(data)  # the same zip by path, as `--dataset pets.zip` gives it
    by_path = import_user_data(tmp_path / "pets.zip")
    assert by_path.name == "pets" and torch.equal(by_path.train_images, ds.train_images)
    # a user's data named like a built-in dataset keeps a name of its own (its checkpoints are not tested on CIFAR-10)
    assert import_upload(data, "cifar10.zip").name == "cifar10 (yours)"
    assert import_user_data(_image_folder(tmp_path / "mnist")).name == "mnist (yours)"


def test_bad_uploads_are_refused(tmp_path):
    from core.importers import import_upload

    with pytest.raises(DataImportError, match="not a readable zip file"):
        import_upload(b"PK\x03\x04 broken", "pets.zip")
    with pytest.raises(DataImportError, match="upload a .csv file"):
        import_upload(b"hello", "notes.txt")
    rows = _rows(10)
    rows[4][2] = 300
    csv_bytes = "\n".join(",".join(map(str, r)) for r in rows).encode()
    with pytest.raises(DataImportError, match="mnist.csv, row 5"):
        import_upload(csv_bytes, "mnist.csv")


def _png_bytes(value: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip_members(members: list[tuple[str, bytes]], method: int | None = None, flags: int = 0,
                 compression: int = 8) -> bytes:
    """A zip of `members`; `method` and `flags` are then written into the first member's central directory entry
    (as another tool would have made it), which is what a reader looks at first."""
    import io
    import struct
    import zipfile

    import warnings

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicate name is what some tests want
        for name, content in members:
            z.writestr(name, content)
    data = bytearray(buffer.getvalue())
    entry = data.find(b"PK\x01\x02")
    if flags:
        data[entry + 8:entry + 10] = struct.pack("<H", struct.unpack("<H", data[entry + 8:entry + 10])[0] | flags)
    if method is not None:
        data[entry + 10:entry + 12] = struct.pack("<H", method)
    return bytes(data)


def _classes(n_per_class: int = 3, prefix: str = "") -> list[tuple[str, bytes]]:
    return [(f"{prefix}{name}/{i}.png", _png_bytes(40 * k + i)) for k, name in enumerate(["cat", "dog"]) for i in range(n_per_class)]


def test_zips_from_windows_and_macos_import_as_their_folders():
    from core.importers import import_zip

    windows = [(name.replace("/", "\\"), content) for name, content in _classes()]
    assert import_zip(_zip_members(windows), "win.zip").class_names == ("cat", "dog")
    macos = _classes() + [("__MACOSX/cat/._0.png", b"\x00\x05\x16\x07"), ("cat/.DS_Store", b"junk"), (".hidden/x.png", b"?")]
    assert import_zip(_zip_members(macos), "mac.zip").class_names == ("cat", "dog")


@pytest.mark.parametrize("make, message", [
    (lambda: _zip_members(_classes(), flags=0x1), "cat/0.png is encrypted"),
    (lambda: _zip_members(_classes(), method=9), "compressed with method 9"),  # Deflate64
    (lambda: _zip_members(_classes(), method=99), "compressed with method 99"),  # AES
    (lambda: _zip_members(_classes() + [("cat/" + "x" * 300 + ".png", _png_bytes(1))]), "too long a name"),
    (lambda: _zip_members(_classes() + [("cat", b"a file named like the folder")]), "cat is both a file and a folder"),
    (lambda: _zip_members(_classes() + [("../../evil.png", _png_bytes(1))]), "points outside the archive"),
    (lambda: _zip_members(_classes() + [("cat/0.png", _png_bytes(9))]), "cat/0.png is in the archive twice"),
])
def test_each_kind_of_bad_zip_is_refused_naming_the_member(make, message):
    from core.importers import import_zip

    with pytest.raises(DataImportError, match=message):
        import_zip(make(), "pets.zip")


def test_a_zip_whose_data_fails_its_check_is_refused():
    from core.importers import import_zip

    stored = bytearray(_zip_members(_classes(), compression=0))  # stored: the image bytes lie in the zip as they are
    start = stored.find(b"IDAT")  # inside the first image's compressed bytes
    stored[start + 12] ^= 0xFF
    with pytest.raises(DataImportError, match="is damaged and cannot be unpacked"):
        import_zip(bytes(stored), "pets.zip")


def test_a_zip_claiming_more_than_the_limits_is_refused_before_unpacking(monkeypatch):
    import core.importers
    from core.importers import import_zip

    monkeypatch.setattr(core.importers, "MAX_ZIP_BYTES", 1000)
    with pytest.raises(DataImportError, match="MB unpacked, more than"):
        import_zip(_zip_members(_classes(20)), "big.zip")
    monkeypatch.setattr(core.importers, "MAX_ZIP_FILES", 5)
    with pytest.raises(DataImportError, match="more than the 5 allowed"):
        import_zip(_zip_members(_classes()), "many.zip")


PARTS = st.sampled_from(["cat", "dog", "Cat", "..", ".", "__MACOSX", ".git", "a\\b", "x" * 256, "é", "0.png", "1.jpg", ""])


@given(extra=st.lists(st.tuples(st.lists(PARTS, min_size=1, max_size=3).map("/".join).filter(bool),
                                st.sampled_from([b"", b"not an image", _png_bytes(3), _png_bytes(200)[:40]])), max_size=4),
       method=st.sampled_from([None, 0, 8, 9, 12, 14, 99]), flags=st.sampled_from([0, 0x1, 0x8]))
def test_any_zip_imports_as_a_dataset_or_is_refused_with_data_import_error(extra, method, flags):
    from core.importers import import_zip

    try:
        dataset = import_zip(_zip_members(_classes() + extra, method=method, flags=flags), "any.zip")
    except DataImportError:
        event("refused")
        return
    event("accepted")
    assert len(dataset.class_names) >= 2 and len(dataset.train_labels) + len(dataset.test_labels) >= 6


CELLS = st.one_of(st.integers(-5, 300).map(str), st.sampled_from(["", " ", "nan", "inf", "1e2", "3.0", "2.5", '"7"', "x",
                                                                 "label", "\ufeff1", '"', "1;2", "True"]))


@given(data=st.data(), header=st.booleans(), bom=st.booleans())
def test_any_csv_imports_every_row_it_holds_or_is_refused_naming_a_row(tmp_path_factory, data, header, bom):
    rows = [[str(v) for v in row] for row in _rows(6, classes=2, seed=1)]
    for _ in range(data.draw(st.integers(0, 3), label="mutations")):
        row = data.draw(st.integers(0, len(rows) - 1), label="row")
        action = data.draw(st.sampled_from(["set", "append", "pop", "blank"]), label="action")
        if not rows[row]:
            continue  # blanked already
        if action == "set":
            rows[row][data.draw(st.integers(0, len(rows[row]) - 1), label="column")] = data.draw(CELLS, label="cell")
        elif action == "append":
            rows[row].append(data.draw(CELLS, label="extra"))
        elif action == "pop":
            rows[row].pop()
        else:
            rows[row] = []
    lines = ([",".join(["label"] + [f"pixel{i}" for i in range(784)])] if header else []) + [",".join(r) for r in rows]
    path = tmp_path_factory.mktemp("csv") / "any.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode())
    try:
        dataset = import_csv(path)
    except DataImportError as exc:
        assert "any.csv" in str(exc)
        event("refused")
        return
    event("accepted")
    kept = [r for r in rows if r]
    assert len(dataset.train_labels) + len(dataset.test_labels) == len(kept)  # no row dropped without a word
    images = torch.cat([dataset.train_images, dataset.test_images]).flatten(1)
    assert sorted(map(tuple, images.tolist())) == sorted(tuple(int(float(c.strip('"'))) for c in r[1:]) for r in kept)


def test_a_csv_with_an_enormous_row_or_number_is_refused_at_once(tmp_path):
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(["0"] * 1_000_000) + "\n")  # pandas would build a million columns first
    with pytest.raises(DataImportError, match="row 1: 1000000 columns, expected 785"):
        import_csv(wide)
    rows = [[str(v) for v in row] for row in _rows(5)]
    rows[2][7] = "9" * 400  # too long for any number type
    with pytest.raises(DataImportError, match="row 3: values must be whole numbers from 0 to 255"):
        import_csv(_write_csv(tmp_path / "long.csv", rows))


def test_an_image_folder_that_decodes_to_more_than_the_limit_is_refused(tmp_path, monkeypatch):
    import core.image_folders

    monkeypatch.setattr(core.image_folders, "MAX_DECODED_BYTES", 16 * 16 * 6)
    with pytest.raises(DataImportError, match="decode to more than"):
        import_image_folder(_image_folder(tmp_path / "pets"))


def _split_folder(root, splits=("train", "test"), classes=("cat", "dog"), per_class=(6, 3, 2)):
    for split, n in zip(splits, per_class):
        _image_folder(root / split, classes=classes, per_class=n)
    return root


def test_train_and_test_folders_keep_their_splits_as_given(tmp_path):
    data = import_image_folder(_split_folder(tmp_path / "pets"))
    assert len(data.train_labels) == 12 and len(data.test_labels) == 6 and data.val_count == 0
    assert data.class_names == ("cat", "dog") and sorted(data.train_labels.tolist()) == [0] * 6 + [1] * 6
    # in a seeded order, not class by class: --limit-train and the embedding take the first images
    assert data.train_labels[:6].tolist() != [0] * 6 and data.test_labels[:3].tolist() != [0] * 3
    assert torch.equal(import_image_folder(tmp_path / "pets").train_images, data.train_images)  # the same order again
    assert data.layout == "train/ and test/ folders, their splits kept as given"
    with_val = import_image_folder(_split_folder(tmp_path / "three", splits=("Train", "valid", "TEST")))
    assert (len(with_val.train_labels), with_val.val_count, len(with_val.test_labels)) == (12 + 6, 6, 4)
    assert "valid/ is the validation set" in with_val.layout
    from core.data import train_val_indices

    assert sorted(with_val.train_labels[12:].tolist()) == [0] * 3 + [1] * 3  # valid/ last
    train_idx, val_idx = train_val_indices(with_val, 0.3, seed=5)  # the folder's own split, whatever is asked
    assert train_idx.tolist() == list(range(12)) and val_idx.tolist() == list(range(12, 18))
    single = import_image_folder(_image_folder(tmp_path / "single"))
    assert single.val_count == 0 and "held out as the test set" in single.layout


def test_a_test_split_may_lack_a_class_but_never_add_one(tmp_path):
    root = _split_folder(tmp_path / "pets")
    shutil.rmtree(root / "test" / "dog")
    data = import_image_folder(root)
    assert data.class_names == ("cat", "dog") and set(data.test_labels.tolist()) == {0}
    _image_folder(root / "test", classes=("emu",), per_class=1)
    with pytest.raises(DataImportError, match="test has class folders that train/ lacks: emu"):
        import_image_folder(root)


def test_splits_of_other_sizes_are_refused_and_grey_meets_colour_as_colour(tmp_path):
    root = _split_folder(tmp_path / "sizes")
    shutil.rmtree(root / "test")
    _image_folder(root / "test", sizes={("cat", 0): (20, 20), ("cat", 1): (20, 20), ("dog", 0): (20, 20), ("dog", 1): (20, 20)},
                  per_class=2)
    with pytest.raises(DataImportError, match="train/ holds images of 16 x 16 but test/ of 20 x 20"):
        import_image_folder(root)
    mixed = tmp_path / "mixed"
    _image_folder(mixed / "train", per_class=6)
    _image_folder(mixed / "test", mode="RGB", per_class=2)
    data = import_image_folder(mixed)
    assert data.train_images.shape[1] == data.test_images.shape[1] == 3
    assert torch.equal(data.train_images[:, 0], data.train_images[:, 2])  # the grey ones, repeated


def test_a_zipped_split_folder_travels_through_the_upload_and_the_saved_copy(tmp_path):
    from core.data import load_saved_dataset, save_dataset
    from core.importers import import_upload

    root = _split_folder(tmp_path / "pets", splits=("train", "val", "test"))
    seen = []
    data = import_upload(_zip_of(root, top="pets"), "pets.zip", lambda done, total: seen.append((done, total)))
    assert (len(data.train_labels), data.val_count, len(data.test_labels)) == (18, 6, 4)
    assert seen[-1] == (22, 22) and all(total == 22 for _, total in seen)
    again = load_saved_dataset(save_dataset(data, tmp_path / "kept"))
    assert (again.val_count, again.layout) == (data.val_count, data.layout)


def test_a_model_trains_on_the_folders_own_validation_set(tmp_path):
    from core.config import TrainConfig
    from core.engine import train

    root = _split_folder(tmp_path / "pets", splits=("train", "val", "test"), per_class=(20, 7, 5))
    result = train(TrainConfig(model="mlp", hidden=(8,), epochs=1, batch_size=8, device="cpu", val_split=0.3,
                               run_dir=str(tmp_path / "run")), dataset=import_image_folder(root))
    assert result.status == "finished" and result.steps[-1]["step"] == 5  # 40 training images, batch 8
    assert len(result.confusion_matrix) == 2 and sum(map(sum, result.confusion_matrix)) == 10


def test_train_and_val_folders_without_test_make_val_the_test_set_and_an_empty_val_is_ignored(tmp_path):
    imagenet = import_image_folder(_split_folder(tmp_path / "imagenet", splits=("train", "val"), per_class=(6, 2)))
    assert (len(imagenet.train_labels), imagenet.val_count, len(imagenet.test_labels)) == (12, 0, 4)
    assert imagenet.layout == "train/ and val/ folders, their splits kept as given (val/ is the test set)"
    root = _split_folder(tmp_path / "pets")
    (root / "val").mkdir()
    assert import_image_folder(root).val_count == 0


def test_the_decoded_pixel_limit_covers_the_whole_folder_not_each_split(tmp_path, monkeypatch):
    import core.image_folders

    root = _split_folder(tmp_path / "pets", per_class=(4, 4))  # 8 + 8 grey images of 16 x 16
    monkeypatch.setattr(core.image_folders, "MAX_DECODED_BYTES", 16 * 16 * 3 * 8)  # each split alone fits (as colour)
    import_image_folder(_split_folder(tmp_path / "small", per_class=(2, 2)))  # 8: within it
    with pytest.raises(DataImportError, match="would decode to more than"):
        import_image_folder(root)


def test_a_saved_dataset_is_named_by_its_splits_too(tmp_path):
    import dataclasses

    from core.data import load_saved_dataset, save_dataset

    data = import_image_folder(_split_folder(tmp_path / "pets", splits=("train", "val", "test")))
    merged = dataclasses.replace(data, val_count=0, layout="one folder")
    first, second = save_dataset(data, tmp_path / "kept"), save_dataset(merged, tmp_path / "kept")
    assert first != second and load_saved_dataset(second).val_count == 0
