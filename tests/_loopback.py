"""A loopback HTTP file server for offline download tests (threading ``http.server`` with Range support).

``LoopbackServer.files`` maps URL paths (``"/a/b.zip"``) to bytes. ``faults`` maps a path to a list of one-shot
faults consumed by successive requests: ``("drop", n)`` sends the headers and ``n`` body bytes then cuts the
connection; ``("ignore_range",)`` answers 200 with the whole body even when a range is asked; ``("status", code)``
answers with that status. Every request is logged in ``requests`` as ``(path, range_header_or_None)``.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        srv: LoopbackServer = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((path, rng))
            faults = srv.faults.get(path)
            fault = faults.pop(0) if faults else None
        body = srv.files.get(path)
        if fault and fault[0] == "status":
            self.send_response(fault[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        status = 200
        if rng and not (fault and fault[0] == "ignore_range"):
            spec = rng.strip().split("=", 1)[1]
            start = int(spec.split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        payload = body[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if fault and fault[0] == "drop":
            self.wfile.write(payload[: fault[1]])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(payload)


class LoopbackServer:
    """Serve ``files`` on ``http://127.0.0.1:<port>``; use as a context manager."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.faults: dict[str, list] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
