"""A visitor without a browser: Streamlit's own websocket protocol, as its front end speaks it.

The front end opens `/_stcore/stream`, sends a `BackMsg` asking for a script run
(which page, which widget values) and draws the `ForwardMsg`s that come back
until `script_finished`. This client does the same with Streamlit's own protobuf
classes and draws nothing, so the server does all the work of a page view while
the visitor costs almost no CPU: thirty of them measure the server, not thirty
Chromiums on the same cores. Shared by tests and `bench/`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg


@dataclass
class PageView:
    """What one script run sent: how long until it finished, its exceptions, its text and its buttons."""

    seconds: float
    exceptions: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    buttons: dict[str, str] = field(default_factory=dict)  # label -> widget id
    bytes: int = 0


class SocketVisitor:
    """One browser tab's session: `await open(page)` for each page, in order; `close()` at the end."""

    def __init__(self, url: str, cookies: dict[str, str] | None = None) -> None:
        self.url = url
        self.cookies = cookies or {}
        self.pages: dict[str, str] = {}  # page name ("" is Home) -> page script hash
        self._socket = None

    async def open(self, page: str = "", clicked: str | None = None, view: PageView | None = None) -> PageView:
        """Run `page` ("" for Home, else its name in the sidebar), pressing the button `clicked` of `view` if given."""
        if self._socket is None:
            host = self.url.split("://", 1)[1]
            headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else None
            self._socket = await websockets.connect(f"ws://{host}/_stcore/stream", subprotocols=["streamlit"],
                                                    origin=self.url, max_size=None, additional_headers=headers)
        request = BackMsg()
        request.rerun_script.query_string = ""
        request.rerun_script.page_script_hash = self.pages.get(page, "")
        if clicked is not None:
            widget = request.rerun_script.widget_states.widgets.add()
            widget.id, widget.trigger_value = view.buttons[clicked], True
        start = time.perf_counter()
        await self._socket.send(request.SerializeToString())
        result = PageView(0.0)
        while True:
            data = await self._socket.recv()
            result.bytes += len(data)
            message = ForwardMsg()
            message.ParseFromString(data)
            kind = message.WhichOneof("type")
            if kind == "navigation":
                self.pages = {("" if p.is_default else p.page_name): p.page_script_hash for p in message.navigation.app_pages}
            elif kind == "delta":
                self._read(message.delta.new_element, result)
            elif kind == "script_finished":
                result.seconds = time.perf_counter() - start
                return result

    @staticmethod
    def _read(element, result: PageView) -> None:
        kind = element.WhichOneof("type")
        if kind == "exception":
            result.exceptions.append(f"{element.exception.type}: {element.exception.message}")
        elif kind in ("markdown", "heading", "alert", "text"):
            result.texts.append(getattr(element, kind).body)
        elif kind == "code":
            result.texts.append(element.code.code_text)
        elif kind == "button":
            result.buttons[element.button.label] = element.button.id

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
