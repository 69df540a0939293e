"""Static dev server for the viewer/uploader bundles under the production CSP.

Serves the built bundles (pathology_hub/static/dist) and the demo pages in this
folder, a DZI pyramid generated with openslide, and a minimal in-memory tus
server, so the browser code can be exercised without the Flask app. A switch
makes tile requests answer 503 to imitate an object-store outage.
"""
from __future__ import annotations

import hashlib
import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
DIST = HERE.parents[1] / "pathology_hub" / "static" / "dist"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self' blob:"
)


def generate_dzi(slide_path: Path, out_dir: Path) -> dict:
    """Write slide.dzi + slide_files/ + thumbnail.jpg; return slide facts for the page config."""
    import openslide
    from openslide.deepzoom import DeepZoomGenerator

    out_dir.mkdir(parents=True, exist_ok=True)
    with openslide.OpenSlide(str(slide_path)) as slide:
        dz = DeepZoomGenerator(slide, tile_size=254, overlap=1, limit_bounds=True)
        (out_dir / "slide.dzi").write_text(dz.get_dzi("jpeg"))
        for level in range(dz.level_count):
            level_dir = out_dir / "slide_files" / str(level)
            level_dir.mkdir(parents=True, exist_ok=True)
            cols, rows = dz.level_tiles[level]
            for col in range(cols):
                for row in range(rows):
                    dz.get_tile(level, (col, row)).convert("RGB").save(
                        level_dir / f"{col}_{row}.jpeg", quality=85
                    )
        thumb = slide.get_thumbnail((256, 256)).convert("RGB")
        thumb.save(out_dir / "thumbnail.jpg", quality=85)
        props = slide.properties
        width, height = dz.level_dimensions[-1]
        mpp = props.get(openslide.PROPERTY_NAME_MPP_X)
        power = props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)
        return {
            "width": width,
            "height": height,
            "mpp": float(mpp) if mpp else None,
            "objectivePower": float(power) if power else None,
            "metadata": {
                "Vendor": props.get(openslide.PROPERTY_NAME_VENDOR, ""),
                "Quality": props.get(openslide.PROPERTY_NAME_QUICKHASH1, "")[:16],
            },
        }


@dataclass
class TusUpload:
    length: int
    metadata: dict[str, str]
    data: bytearray = field(default_factory=bytearray)


@dataclass
class DevState:
    dzi_dir: Path
    pages: dict[str, str] = field(default_factory=dict)
    fail_tiles: bool = False
    tile_requests: int = 0
    uploads: dict[str, TusUpload] = field(default_factory=dict)
    patch_delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _parse_tus_metadata(header: str) -> dict[str, str]:
    out = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        out[key] = base64.b64decode(value).decode() if value else ""
    return out


def make_handler(state: DevState):
    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep test output readable
            pass

        def end_headers(self):
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

        def _send(self, status: int, body: bytes = b"", ctype: str = "text/plain", headers=None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _json_error(self, status: int, code: str, message: str, headers=None):
            body = json.dumps({"error": {"code": code, "message": message}}).encode()
            self._send(status, body, "application/json", headers)

        def translate_path(self, path):
            path = urlsplit(path).path
            if path.startswith("/dist/"):
                return str(DIST / path[len("/dist/"):])
            if path.startswith("/dev/"):
                return str(HERE / path[len("/dev/"):])
            return str(HERE / "__nothing__")

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/favicon.ico":
                return self._send(204)
            if path in state.pages:
                return self._send(200, state.pages[path].encode(), "text/html; charset=utf-8")
            m = re.fullmatch(r"/dzi/(\d+)/(slide\.dzi|thumbnail\.jpg)", path)
            if m:
                f = state.dzi_dir / m.group(2)
                ctype = "application/xml" if f.suffix == ".dzi" else "image/jpeg"
                return self._send(200, f.read_bytes(), ctype)
            m = re.fullmatch(r"/dzi/(\d+)/slide_files/(\d+)/(\d+)_(\d+)\.jpeg", path) or re.fullmatch(
                r"/t/(\d+)/(\d+)/(\d+)_(\d+)\.jpeg", path
            )
            if m:
                with state.lock:
                    state.tile_requests += 1
                if state.fail_tiles:
                    return self._json_error(503, "storage_unavailable", "Storage unavailable")
                f = state.dzi_dir / "slide_files" / m.group(2) / f"{m.group(3)}_{m.group(4)}.jpeg"
                if not f.exists():
                    return self._send(404, b"no such tile")
                return self._send(200, f.read_bytes(), "image/jpeg")
            m = re.fullmatch(r"/status/(\w+)", path)
            if m:
                done = m.group(1) in state.uploads and len(state.uploads[m.group(1)].data) == state.uploads[m.group(1)].length
                return self._send(200, json.dumps({"status": "ready" if done else "processing"}).encode(), "application/json")
            return super().do_GET()

        # ---- minimal tus 1.0 server (creation + core), enough for tus-js-client
        def do_OPTIONS(self):
            self._send(204, headers={"Tus-Resumable": "1.0.0", "Tus-Version": "1.0.0", "Tus-Extension": "creation"})

        def do_POST(self):
            if urlsplit(self.path).path != "/files/":
                return self._send(404)
            meta = _parse_tus_metadata(self.headers.get("Upload-Metadata", ""))
            length = int(self.headers.get("Upload-Length", "0"))
            if self.headers.get("X-CSRFToken") != "test-csrf":
                return self._json_error(403, "csrf", "CSRF token missing")
            if meta.get("filename", "").startswith("too-big"):
                return self._json_error(413, "quota_exceeded", "Storage quota exceeded for this case")
            upload_id = hashlib.sha1(f"{meta}{length}{len(state.uploads)}".encode()).hexdigest()[:16]
            state.uploads[upload_id] = TusUpload(length=length, metadata=meta)
            self._send(201, headers={"Location": f"/files/{upload_id}", "Tus-Resumable": "1.0.0"})

        def _upload(self):
            m = re.fullmatch(r"/files/(\w+)", urlsplit(self.path).path)
            return state.uploads.get(m.group(1)) if m else None

        def do_HEAD(self):
            up = self._upload()
            if up is None:
                return super().do_HEAD() if not self.path.startswith("/files/") else self._send(404)
            self._send(200, headers={"Upload-Offset": str(len(up.data)), "Upload-Length": str(up.length),
                                     "Tus-Resumable": "1.0.0"})

        def do_PATCH(self):
            import time

            up = self._upload()
            if up is None:
                return self._send(404)
            offset = int(self.headers.get("Upload-Offset", "-1"))
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if offset != len(up.data):
                return self._send(409, b"offset mismatch")
            if state.patch_delay:
                time.sleep(state.patch_delay)
            up.data.extend(body)
            if len(up.data) == up.length and hashlib.sha256(up.data).hexdigest() != up.metadata.get("sha256"):
                return self._json_error(460, "checksum_mismatch", "SHA-256 mismatch")
            self._send(204, headers={"Upload-Offset": str(len(up.data)), "Tus-Resumable": "1.0.0"})

    return Handler


def render_page(template: str, config: dict) -> str:
    """Embed config as a JSON data block; '</' is escaped so it cannot close the script element."""
    text = (HERE / template).read_text()
    return text.replace("__CONFIG__", json.dumps(config).replace("</", "<\\/"))


def serve(state: DevState, port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
