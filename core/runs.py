"""Command line for the run store: python -m core.runs list|show|export|delete|resume|stop ...

Runs started with `python -m core.train` and in a laptop's app share the local
workspace, so either can see and continue the other's runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.checkpoint import CheckpointError, load_checkpoint
from core.data import DATASETS, SAVED_SUFFIX, DatasetUnavailable
from core.engine import claim_resume, resolve_dataset, resume
from core.events import stop_on_sigterm
from core.export import run_zip, to_onnx, write_run_script
from core.importers import DataImportError
from core.settings import HostSettings
from core.store import DamagedRun, RunStatus, RunStore, delete_run, find_run, list_runs, run_row, runs_dir
from core.train import ProgressBar, report, train_on_ray
from core.worker import cancel_if_queued, request_stop


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def cmd_list(args) -> int:
    stores = list_runs()
    if args.json:
        print(json.dumps([{"id": s.id, **s.status()} for s in stores]))
        return 0
    print(f"{'run':44} {'status':12} {'dataset':14} {'model':15} {'test acc':>8} {'seconds':>8}")
    for s in stores:
        row = run_row(s)
        if row["status"] == RunStatus.DAMAGED:
            print(f"{s.id:44} {'damaged':12} {row['message']}")
            continue
        print(f"{s.id:44} {row['status']:12} {row['dataset'][:14]:14} {row['model']:15} "
              f"{_fmt(row['test acc'], '8.2%')} {_fmt(row['seconds'], '8.1f')}")
    if not stores:
        print(f"(no runs in {runs_dir()})")
    return 0


def cmd_show(args) -> int:
    store = find_run(args.run)
    shown = {"id": store.id, "path": str(store.path), "status": store.status()}
    try:
        shown.update(config=store.config().to_dict(), epochs=store.epochs(), evaluation=store.evaluation())
    except DamagedRun as exc:
        shown["status"] = {**shown["status"], "status": RunStatus.DAMAGED, "message": f"This run is damaged: {exc}"}
    print(json.dumps(shown, indent=1))
    return 0


def cmd_export(args) -> int:
    store = find_run(args.run)
    if not (args.zip or args.onnx or args.script):
        print("error: say what to export: --zip FILE, --onnx FILE and/or --script FILE", file=sys.stderr)
        return 2
    for target in filter(None, (args.zip, args.onnx, args.script)):
        if not Path(target).parent.is_dir():
            print(f"error: the folder of {target} does not exist", file=sys.stderr)
            return 1
    if args.zip:
        Path(args.zip).write_bytes(run_zip(store))
        print(f"wrote {args.zip}")
    if args.onnx:
        to_onnx(load_checkpoint(store.best_checkpoint), Path(args.onnx))
        print(f"wrote {args.onnx}")
    if args.script:
        write_run_script(store, Path(args.script))
        print(f"wrote {args.script}")
    return 0


def cmd_delete(args) -> int:
    store = find_run(args.run)
    if not args.yes:
        print(f"error: deleting {store.path} cannot be undone; add --yes to confirm", file=sys.stderr)
        return 2
    delete_run(store)
    print(f"deleted {store.id}")
    return 0


def cmd_resume(args) -> int:
    store = find_run(args.run)
    settings = HostSettings.load()
    if settings.ray_address:
        return resume_on_ray(store, settings, args.json)
    bar = ProgressBar()
    try:
        result = resume(store, on_event=bar, stop=stop_on_sigterm())
    finally:
        bar.close()
    return report(result, args.json)


def resume_on_ray(store: RunStore, settings: HostSettings, as_json: bool) -> int:
    """Resume on the cluster: claim the run as resume() does, then ship it, its user dataset too, to an actor."""
    claim_resume(store, backend="ray")
    name = store.config().dataset
    dataset = None if name in DATASETS or name.endswith(SAVED_SUFFIX) else resolve_dataset(name)
    return train_on_ray(store, settings, dataset, as_json)


def cmd_stop(args: argparse.Namespace) -> int:
    store = find_run(args.run)
    if cancel_if_queued(store):  # queued in the app: no server has taken it yet
        print(f"cancelled run {store.id} before it started")
        return 0
    if not request_stop(store):
        print(f"error: run {store.id} is {store.status()['status']}, not training", file=sys.stderr)
        return 1
    print(f"asked run {store.id} to stop")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.runs", description="List, inspect, export, delete and resume runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="every run in the store, newest first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="one run's status, config, curves and evaluation as JSON")
    p.add_argument("run", help="run id (folder name) or path")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("export", help="a zip (config, metrics CSV, weights), an ONNX model and/or a standalone script")
    p.add_argument("run")
    p.add_argument("--zip")
    p.add_argument("--onnx")
    p.add_argument("--script")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("delete", help="remove a run's folder")
    p.add_argument("run")
    p.add_argument("--yes", action="store_true", help="confirm")
    p.set_defaults(func=cmd_delete)
    p = sub.add_parser("resume", help="continue an interrupted or stopped run from its last finished epoch")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_resume)
    p = sub.add_parser("stop", help="ask a training run to stop (it keeps its best checkpoint)")
    p.add_argument("run")
    p.set_defaults(func=cmd_stop)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError, CheckpointError, DatasetUnavailable, DataImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
