"""Fault injection for the reliability tests and the S3 load benchmark.

* synthetic and hostile inputs: small valid PNGs, fuzzed variants, decompression bombs, non-images;
* codecs that misbehave on purpose (die, hang, encode non-deterministically), loadable by path
  (``RunConfig(codec="tests.reliability.faults:KillingCodec")``) inside Ray actors;
* :class:`FaultProxy`, an HTTP proxy in front of an S3 endpoint that answers ``503 SlowDown``,
  ``500 InternalError`` or resets the connection for chosen requests.

Actors are separate processes, so a fault codec cannot see flags set in the test process.  Its
knobs are therefore codec *parameters* (they travel inside the job spec to every actor) and its
memory across process deaths is a directory of marker files (``fault_dir``).
"""

from __future__ import annotations

import http.client
import os
import random
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from recodec.codecs.base import Param
from recodec.codecs.jpeg import JpegCodec

# -- inputs ------------------------------------------------------------------------------------


def png_bytes(seed: int, width: int = 32, height: int = 32, *, stored: bool = False) -> bytes:
    """A small, valid, deterministic RGB PNG (a gradient plus a little noise).

    ``stored=True`` writes uncompressed deflate blocks, so every image of one size has the same
    byte length (for overwrites that a size check cannot see).
    """
    import imagecodecs

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     np.full_like(x, seed * 37 % 256)], axis=-1)
    noise = rng.integers(-8, 9, base.shape)
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    return bytes(imagecodecs.png_encode(pixels, level=0 if stored else None))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A well-formed PNG (valid CRCs) whose header declares ``width`` x ``height`` gray pixels.

    Only the first rows are present: a reader that trusts the header before checking the
    pixel limit would try to allocate ``width * height`` bytes.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


EPS_BYTES = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n"
             b"newpath 0 0 moveto 32 32 lineto stroke\nshowpage\n%%EOF\n")
PDF_BYTES = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
             b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


def bitflip_variants(data: bytes, n: int) -> list[tuple[str, bytes]]:
    """``n`` copies of ``data``, each with one bit flipped, at offsets spread over the whole file."""
    out = []
    for i in range(n):
        offset = i * (len(data) - 1) // max(n - 1, 1)
        mutated = bytearray(data)
        mutated[offset] ^= 1 << (i % 8)
        out.append((f"flip-{offset:05d}-b{i % 8}", bytes(mutated)))
    return out


def truncation_variants(data: bytes, n: int) -> list[tuple[str, bytes]]:
    """``n`` prefixes of ``data``, from empty to one byte short of complete."""
    lengths = sorted({i * (len(data) - 1) // max(n - 1, 1) for i in range(n)})
    return [(f"cut-{length:05d}", data[:length]) for length in lengths]


# -- misbehaving codecs --------------------------------------------------------------------------


class FaultyJpegCodec(JpegCodec):
    """JPEG that calls :meth:`misbehave` before encoding an image ``trigger_width`` pixels wide.

    Triggering on the image width lets a test pick the victim image by giving it an odd size,
    with nothing shared between the test process and the actors but the job's parameters.
    """

    name = "faulty-jpeg"
    params = JpegCodec.params + (
        Param("fault_dir", str, "", "directory of marker files that survive actor deaths"),
        Param("trigger_width", int, 0, "misbehave on images this many pixels wide (0: never)"),
        Param("kill_times", int, 1, "KillingCodec: how many times to die before encoding normally"),
        Param("hang_s", float, 0.0, "HangingCodec: seconds to sleep in encode"),
    )

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        if params["trigger_width"] and array.shape[1] == params["trigger_width"]:
            self.misbehave(params)
        return super()._encode(array, params)

    def misbehave(self, params: dict[str, Any]) -> None:
        """What to do to a triggering image (nothing here)."""


class KillingCodec(FaultyJpegCodec):
    """Kills its whole process (``os._exit``) on the trigger image, ``kill_times`` times in all."""

    name = "killing-jpeg"

    def misbehave(self, params: dict[str, Any]) -> None:
        """Die unless ``kill_times`` deaths are already recorded in ``fault_dir``."""
        markers = Path(params["fault_dir"])
        deaths = len(list(markers.glob("death-*")))
        if deaths < params["kill_times"]:
            # Record the death before dying: the retried call runs in a fresh process.
            (markers / f"death-{deaths}-{os.getpid()}").touch()
            os._exit(1)


class HangingCodec(FaultyJpegCodec):
    """Sleeps ``hang_s`` seconds in encode on the trigger image (a stuck encoder)."""

    name = "hanging-jpeg"

    def misbehave(self, params: dict[str, Any]) -> None:
        """Block the encoding thread."""
        if params["fault_dir"]:
            (Path(params["fault_dir"]) / f"hang-{os.getpid()}-{uuid.uuid4().hex[:6]}").touch()
        time.sleep(params["hang_s"])


class NondeterministicCodec(JpegCodec):
    """A valid JPEG with a random comment segment: every encode of the same pixels differs.

    Stands for encoders whose output depends on timing or hardware (multi-threaded or GPU
    entropy coders): the bytes differ, the decoded pixels do not.
    """

    name = "nondeterministic-jpeg"

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        data = super()._encode(array, params)
        comment = os.urandom(16)
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]


# -- S3 fault proxy ------------------------------------------------------------------------------

#: What S3 answers when it throttles or fails; botocore parses the code from this body.
_S3_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}
FAULT_KINDS = ("slowdown", "internal", "reset")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}


@dataclass
class FaultRule:
    """Which requests get a fault: the first ``first`` matching ones, then each with ``rate``."""

    kind: str
    rate: float = 0.0
    first: int = 0
    #: Only requests with this HTTP method (None: any).
    method: str | None = None
    #: Only requests whose decoded path contains this text (None: any).
    path_contains: str | None = None
    matched: int = 0
    injected: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {FAULT_KINDS}")

    def matches(self, method: str, path: str) -> bool:
        """True when this rule applies to a request."""
        return ((self.method is None or self.method == method)
                and (self.path_contains is None or self.path_contains in path))


@dataclass
class ProxyStats:
    """Requests seen and faults injected by a :class:`FaultProxy`."""

    requests: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    upstream_errors: int = 0

    @property
    def total_requests(self) -> int:
        """Requests received, faulted or not."""
        return sum(self.requests.values())

    @property
    def total_injected(self) -> int:
        """Faults injected (each one is a request the client had to retry)."""
        return sum(self.injected.values())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: the tests read ProxyStats instead

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers: dropped, the body is forwarded with a Content-Length
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _relay(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()  # read first, so a faulted client is never blocked mid-upload
        fault = proxy.decide(self.command, unquote(urlsplit(self.path).path))
        if fault == "reset":
            # SO_LINGER 0 turns close() into a TCP RST: the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault:
            status, code, message = _S3_ERRORS[fault]
            payload = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                       f"<Message>{message}</Message><RequestId>{uuid.uuid4().hex}</RequestId></Error>").encode()
            self.send_response_only(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        status, headers, data = proxy.forward(self.command, self.path, self.headers, body)
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        # HEAD answers carry the object's length but no body.
        length = next((v for n, v in headers if n.lower() == "content-length"), "0") \
            if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: "FaultProxy"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # resets and clients hanging up are the point of this server


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of an S3 endpoint, injecting faults by rule.

    >>> with FaultProxy("http://127.0.0.1:5000", [FaultRule("slowdown", rate=0.02)]) as proxy:
    ...     options["client_kwargs"]["endpoint_url"] = proxy.url
    """

    def __init__(self, upstream: str, rules: list[FaultRule] | None = None, *, seed: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules = list(rules or [])
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        """The endpoint URL clients should use."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FaultProxy":
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def set_rules(self, rules: list[FaultRule]) -> None:
        """Replace the fault rules (an empty list makes the proxy transparent)."""
        with self._lock:
            self.rules = list(rules)

    def decide(self, method: str, path: str) -> str | None:
        """The fault to inject for a request, if any (first matching rule that fires wins)."""
        with self._lock:
            self.stats.requests[method] += 1
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                rule.matched += 1
                if rule.matched <= rule.first or self._rng.random() < rule.rate:
                    rule.injected += 1
                    self.stats.injected[rule.kind] += 1
                    return rule.kind
            return None

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = self._local.conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        return conn

    def forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send a request upstream on this thread's keep-alive connection; return the answer."""
        out = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
        out["Content-Length"] = str(len(body))
        for attempt in (0, 1):  # a stale keep-alive connection is re-opened once
            try:
                conn = self._connection(fresh=attempt > 0)
                conn.request(method, path, body=body, headers=out)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (http.client.HTTPException, OSError):
                if attempt:
                    with self._lock:
                        self.stats.upstream_errors += 1
                    raise
        raise AssertionError("unreachable")
