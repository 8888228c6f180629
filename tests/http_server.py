"""A real HTTP server with range requests on 127.0.0.1, for tests of remote inputs
(COGs, STAC Items, evaluation scenes): tornado's static file handler in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

#: A token tests put in URLs: it must appear in no message, log or output.
SECRET = "s3cr3t-T0KEN"

#: How a client reading COGs over HTTP would set GDAL: range requests in parallel, merged
#: when adjacent, and no probing of sidecar files (geosr sets the rest, REMOTE_DEFAULTS).
HTTP_ENV = {
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
}


class _CountingFiles(tornado.web.StaticFileHandler):
    """Tornado's static file handler (it answers Range requests), counting body bytes sent."""

    def write(self, chunk: bytes | str | dict) -> None:
        self.settings["served"].append(len(chunk))
        super().write(chunk)


@dataclass
class Server:
    folder: Path
    url: str
    served: list[int] = field(default_factory=list)

    @property
    def bytes_served(self) -> int:
        return sum(self.served)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[Server]:
    """Serve ``tmp_path / "www"`` on 127.0.0.1 from a thread, with its own event loop."""
    folder = tmp_path / "www"
    folder.mkdir()
    served: list[int] = []
    state: dict = {}
    ready = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = tornado.web.Application(
            [(r"/(.*)", _CountingFiles, {"path": str(folder)})], served=served
        )
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        state.update(loop=loop, port=sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()
        server.stop()
        loop.run_until_complete(server.close_all_connections())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield Server(folder, f"http://127.0.0.1:{state['port']}", served)
    state["loop"].call_soon_threadsafe(state["loop"].stop)
    thread.join(10)
