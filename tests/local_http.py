"""A file server on 127.0.0.1 for download tests: Range requests, transfers cut short, failures on demand.

    with LocalServer({"a.tgz": data}) as server:
        server.cut["a.tgz"] = 1000      # the next response for a.tgz stops after 1000 bytes (then clears)
        server.status["b.zip"] = 503    # every request for b.zip fails with this status
        server.url                      # "http://127.0.0.1:PORT"
        server.requests                 # [(name, Range header or None), ...]
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer:
    def __init__(self, files: dict[str, bytes] | None = None, ignore_range: bool = False):
        self.files: dict[str, bytes] = dict(files or {})
        self.cut: dict[str, int] = {}
        self.status: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.ignore_range = ignore_range
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "LocalServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name in server.status:
                    self.send_error(server.status[name])
                    return
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                limit = server.cut.pop(name, None)
                self.wfile.write(body if limit is None else body[:limit])
                self.wfile.flush()
                self.close_connection = True  # a cut response ends here, short of its Content-Length

        return Handler
