"""What the server does once, around all its visitors: warm the imports before the first, close the queue after the last.

`streamlit run app.py` imports `app.py`, finds its `st.App` and calls `lifespan` before it accepts a
connection, so the first student of a freshly started class server does not wait for torch, plotly and
pandas to import (about 4 s here), and queued runs start again after a restart without waiting for a visitor.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import core
from core.scheduler import scheduler, shutdown

# what the pages import besides `core` (captum: core.saliency imports it on first use); streamlit_drawable_canvas
# refuses to import outside a script run
PAGE_LIBRARIES = ("plotly.graph_objects", "pandas", "PIL.Image", "captum.attr")


def warm_imports() -> None:
    """Import every module a page needs, once, in the server's main thread."""
    for module in pkgutil.iter_modules(core.__path__, "core."):
        importlib.import_module(module.name)
    for name in PAGE_LIBRARIES:
        importlib.import_module(name)


@asynccontextmanager
async def lifespan(app: object) -> AsyncIterator[None]:
    warm_imports()
    scheduler()  # resumes the queue that was on disk when the server stopped
    yield
    shutdown()  # its workers' runs read as interrupted, resumable from their last epoch
