"""The run store at its doors: run ids, --run-dir, damaged files, deletes that only ever remove one run.

Property tests (Hypothesis) throw arbitrary ids and arbitrary JSON at the store;
regression tests pin each failure the bad-input issue reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from core import runs as runs_cli
from core.config import TrainConfig
from core.store import RUN_ID, DamagedRun, RunStatus, RunStore, delete_run, find_run, list_runs, run_row

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=12)


def finished_run(root: Path, name: str) -> RunStore:
    """A run folder as the engine leaves it (without the weights, which these tests never read)."""
    store = RunStore.create(TrainConfig(epochs=1), "mnist", root / name)
    store.write_metrics([{"epoch": 1, "train_loss": 0.3, "train_accuracy": 0.9, "val_loss": 0.2, "val_accuracy": 0.95,
                          "seconds": 1.0, "lr": 0.01}], [{"epoch": 1, "step": 5, "loss": 0.3, "lr": 0.01}])
    store.update_status(status=RunStatus.FINISHED, test_accuracy=0.95, pid=None)
    return store


@pytest.fixture
def store_root(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.mark.parametrize("run_id", ["", ".", "..", "../runs", "a/../..", "-x", " ", "x" * 300, "runs\x00", "_workspaces"])
def test_an_id_that_is_not_one_run_folder_is_refused_and_deletes_nothing(store_root, run_id, capsys):
    keep = finished_run(store_root, "keep")
    assert runs_cli.main(["delete", "--yes", "--", run_id]) == 1
    assert "error:" in capsys.readouterr().err
    assert keep.status()["status"] == RunStatus.FINISHED and len(list_runs(store_root)) == 1


@given(run_id=st.text(max_size=40))
def test_any_id_finds_a_run_inside_the_store_or_raises_key_error(store_root, run_id):
    finished_run(store_root, "keep") if not (store_root / "keep").exists() else None
    try:
        store = find_run(run_id, store_root)
    except KeyError:
        event("refused")
        return
    event("accepted")
    assert store.path.resolve().parent == store_root.resolve()  # one folder, directly inside the store
    assert store.path.name == run_id


@given(status=JSON, config=JSON)
def test_a_run_with_any_json_in_its_files_reads_as_a_run_or_as_damaged_and_never_hides_the_others(store_root, status, config):
    good = finished_run(store_root, "good") if not (store_root / "good").exists() else RunStore(store_root / "good")
    odd = store_root / "odd"
    odd.mkdir(exist_ok=True)
    (odd / "status.json").write_text(json.dumps(status))
    (odd / "config.json").write_text(json.dumps(config))
    rows = {row["id"]: row for row in map(run_row, list_runs(store_root))}
    assert rows["good"]["status"] == "finished"
    assert rows["odd"]["status"] in {s.value for s in RunStatus}
    event("damaged" if rows["odd"]["status"] == "damaged" else "read")
    if rows["odd"]["status"] == "damaged":
        assert "damaged" in rows["odd"]["message"]
    assert RunStore(odd).status()["status"] in set(RunStatus)
    assert good.config().epochs == 1


@pytest.mark.parametrize("status, reason", [
    ("null", "not a JSON object"), ("[1, 2]", "not a JSON object"), ('"finished"', "not a JSON object"),
    ('{"status": "finished", "pid": "abc"}', "pid"), ('{"status": "running", "pid": 1099511627776}', "pid"),
    ('{"status": "finished", "created": "yesterday"}', "created"), ('{"status": "done"}', "no known status"),
    ("{not json", "not valid JSON"), ('{"status": "finished", "created": ' + "9" * 5000 + "}", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_one_damaged_run_is_listed_as_damaged_and_the_others_list_show_and_delete(store_root, capsys, status, reason):
    good, other = finished_run(store_root, "good"), finished_run(store_root, "other")
    bad = finished_run(store_root, "bad")
    (bad.path / "status.json").write_text(status)
    assert runs_cli.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "damaged" in lines["bad"] and reason in lines["bad"]
    assert "finished" in lines["good"] and "finished" in lines["other"]
    assert runs_cli.main(["list", "--json"]) == 0
    listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["bad"]["status"] == "damaged" and listed["good"]["status"] == "finished"
    assert runs_cli.main(["show", "good"]) == 0 and json.loads(capsys.readouterr().out)["config"]["epochs"] == 1
    assert runs_cli.main(["show", "bad"]) == 0 and reason in capsys.readouterr().out
    assert runs_cli.main(["delete", "other", "--yes"]) == 0 and not other.path.exists()
    assert runs_cli.main(["delete", "bad", "--yes"]) == 0 and not bad.path.exists()
    assert good.status()["status"] == RunStatus.FINISHED


def test_a_config_that_is_not_an_object_marks_only_that_run_damaged(store_root):
    finished_run(store_root, "good")
    bad = finished_run(store_root, "bad")
    (bad.path / "config.json").write_text("[]")
    rows = {r["id"]: r for r in map(run_row, list_runs(store_root))}
    assert rows["bad"]["status"] == "damaged" and "config.json" in rows["bad"]["message"]
    assert rows["good"]["model"] == TrainConfig().model
    with pytest.raises(DamagedRun, match="config.json"):
        bad.config()


def test_run_dir_must_be_a_new_or_empty_folder_never_the_store_a_file_or_another_folder(store_root, tmp_path, mnist, capsys):
    from core import train as train_cli

    keep = finished_run(store_root, "keep")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    (tmp_path / "a-file").write_text("mine")
    for target, message in ((store_root, "the run store itself"), (tmp_path / "notes", "already holds other files"),
                            (tmp_path / "a-file", "is a file"), (keep.path, "already holds a run"),
                            (tmp_path / ("x" * 300), "too long"), (Path("/proc/no-run-here"), "Cannot write a run")):
        code = train_cli.main(["--limit-train", "100", "--device", "cpu", "--run-dir", str(target)])
        err = capsys.readouterr().err
        assert code == 1 and message in err, (target, err[-300:])
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine" and (tmp_path / "a-file").read_text() == "mine"
    assert keep.status()["status"] == RunStatus.FINISHED


def test_export_into_a_missing_folder_says_so(store_root, capsys):
    finished_run(store_root, "keep")
    assert runs_cli.main(["export", "keep", "--zip", str(store_root / "no" / "such" / "r.zip")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_delete_refuses_a_store_or_workspace_folder_even_when_it_looks_like_a_run(store_root):
    keep = finished_run(store_root, "keep")
    (store_root / "status.json").write_text('{"status": "finished"}')  # as an old --run-dir "$PLAYGROUND_RUNS_DIR" left it
    with pytest.raises(ValueError, match="not a run folder"):
        delete_run(RunStore(store_root))
    with pytest.raises(KeyError):
        find_run(str(store_root))
    assert keep.path.exists()


@pytest.mark.parametrize("layers", ['"conv1"', '{"conv1": 3}', '{"conv1": {"mean": 1, "std": 1}}',
                                    '{"conv1": {"mean": "x", "std": 1, "grad_norm": 1}}'])
def test_steps_whose_layer_numbers_are_not_numbers_mark_the_run_damaged(store_root, layers):
    run = finished_run(store_root, "run")
    (run.path / "steps.json").write_text(f'[{{"epoch": 1, "step": 1, "loss": 0.5, "lr": 0.1, "layers": {layers}}}]')
    with pytest.raises(DamagedRun, match="steps.json"):
        run.steps()
    (run.path / "steps.json").write_text('[{"epoch": 1, "step": 1, "loss": 0.5, "lr": 0.1, '
                                         '"layers": {"conv1": {"mean": 0.1, "std": null, "grad_norm": 2}}}]')
    assert run.steps()[0]["layers"]["conv1"]["std"] is None


@given(st.text(max_size=60))
def test_a_run_made_for_a_dataset_of_any_name_is_found_by_the_store(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("runs")
    store = RunStore.create(TrainConfig(), name, root=root)  # "café", "数字", "..": its folder is still a run id
    event("non-ASCII" if not name.isascii() else "ASCII")
    assert RUN_ID.fullmatch(store.path.name) and [s.path for s in list_runs(root)] == [store.path]
