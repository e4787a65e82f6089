"""Workspaces: whose runs and uploads are whose on a shared server.

The local workspace is the store's root (PLAYGROUND_RUNS_DIR), where the
command line writes and where a laptop's app reads, as always. Every other
workspace is a folder `_workspaces/<id>/` under it. Its id is a hash of the
secret that names it (an anonymous browser's random key, or a signed-in user's
identity), so that no folder name, path or page reveals the secret, and nobody
can reach a workspace without it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path

from core.data import DATASETS
from core.store import RunStore, list_runs, runs_dir

LOCAL = "local"
WORKSPACE_ID = re.compile(r"[0-9a-f]{32}")
BROWSER_KEY = re.compile(r"[A-Za-z0-9_-]{32,64}")


def new_browser_key() -> str:
    """An unguessable key for an anonymous browser (192 random bits)."""
    return secrets.token_urlsafe(24)


def workspace_for_key(key: str) -> str:
    """The workspace of an anonymous browser's key; ValueError for anything that is not such a key."""
    if not isinstance(key, str) or not BROWSER_KEY.fullmatch(key):
        raise ValueError("Not a workspace key.")
    return hashlib.sha256(f"browser:{key}".encode()).hexdigest()[:32]


def workspace_for_user(identity: str) -> str:
    """The workspace of a signed-in user (their identity provider's subject or e-mail)."""
    return hashlib.sha256(f"user:{identity}".encode()).hexdigest()[:32]


def workspace_root(workspace: str) -> Path:
    if workspace == LOCAL:
        return runs_dir()
    if not WORKSPACE_ID.fullmatch(workspace):
        raise ValueError(f"{workspace[:40]!r} is not a workspace.")
    return runs_dir() / "_workspaces" / workspace


def uploads_dir(workspace: str) -> Path:
    """Where a workspace keeps its uploaded datasets (not a run: run ids cannot start with '_')."""
    return workspace_root(workspace) / "_uploads"


def may_read_dataset(workspace: str, dataset: str) -> bool:
    """Whether a run of `workspace` may load `dataset`: a built-in one, the workspace's own uploads, and (in the
    local workspace, the machine's owner) any path on this machine."""
    if dataset in DATASETS or workspace == LOCAL:
        return True
    try:
        return Path(dataset).resolve().parent == uploads_dir(workspace).resolve()
    except (OSError, ValueError):
        return False


def all_workspaces() -> list[str]:
    """The local workspace and every private one that has a folder."""
    folder = runs_dir() / "_workspaces"
    try:
        private = sorted(p.name for p in folder.iterdir() if WORKSPACE_ID.fullmatch(p.name))
    except OSError:
        private = []
    return [LOCAL, *private]


def all_runs() -> list[tuple[str, RunStore]]:
    """(workspace, run) for every run of every workspace, newest first within each workspace (for the teacher)."""
    return [(ws, store) for ws in all_workspaces() for store in list_runs(workspace_root(ws))]
