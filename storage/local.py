"""Objects as plain files under one root directory (single-host deployments, tests).

Layout: the object ``cases/12/slide.svs`` is the file ``<root>/cases/12/slide.svs``,
byte for byte, so operators can inspect and back up the tree with ordinary tools
(use ``rsync -X`` / ``tar --xattrs``: metadata lives in an extended attribute).

Atomicity: a write goes to a hidden temp file in the target directory, is
fsync'ed, gets its metadata xattr, and is then ``os.replace``d onto the key.
Data and metadata therefore appear together in one rename; a crash leaves at
most an orphaned ``.tmp-*`` file, never a half-written object under its key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Mapping

from .base import SHA256_META, ObjectInfo, ObjectStore, RangeReader
from .errors import InvalidKey, ObjectNotFound, StorageError, StorageUnavailable
from .keys import validate_key, validate_metadata, validate_prefix
from .verify import HashingReader, file_sha256

#: One xattr holds content type + user metadata as JSON (ext4 gives ~4 KB per inode).
XATTR = "user.pathology_hub.meta"
TMP_PREFIX = ".tmp-"
_UNAVAILABLE = {errno.ENOSPC, errno.EIO, errno.EROFS, errno.EDQUOT, errno.ENODEV, errno.ESTALE}
_COPY_CHUNK = 1 << 20


@contextlib.contextmanager
def _mapped_errors(key: str) -> Iterator[None]:
    """Translate OSError into the storage hierarchy so callers never see raw errno."""
    try:
        yield
    except StorageError:
        raise
    except (FileNotFoundError, IsADirectoryError):
        raise ObjectNotFound(f"no object {key!r}") from None
    except NotADirectoryError:
        raise ObjectNotFound(f"no object {key!r}") from None
    except OSError as exc:
        if exc.errno in _UNAVAILABLE:
            raise StorageUnavailable(f"local store: {exc.strerror} while accessing {key!r}") from exc
        raise StorageError(f"local store: {exc} while accessing {key!r}") from exc


class LocalStore(ObjectStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        root_path = Path(root)
        if not root_path.is_absolute():
            raise ValueError(f"LocalStore root must be absolute, got {root!r}")
        root_path.mkdir(parents=True, exist_ok=True)
        self.root = root_path.resolve()
        self.description = f"file://{self.root}"
        self._check_xattrs()

    # -- paths -------------------------------------------------------------
    def _check_xattrs(self) -> None:
        """Fail at startup, not at first upload, on a filesystem without user xattrs."""
        fd, probe = tempfile.mkstemp(dir=self.root, prefix=TMP_PREFIX)
        try:
            os.setxattr(fd, XATTR, b"{}")
        except OSError as exc:
            raise StorageError(f"{self.root}: filesystem does not support user xattrs ({exc})") from exc
        finally:
            os.close(fd)
            os.unlink(probe)

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self.root / key
        # Second line of defence (symlinks planted inside the root, future key-rule bugs).
        real = os.path.realpath(path)
        if os.path.commonpath([real, str(self.root)]) != str(self.root) or real == str(self.root):
            raise InvalidKey(f"key {key!r} resolves outside the store root")
        return path

    # -- writes ------------------------------------------------------------
    def _write(self, key: str, fill: Callable[[BinaryIO], str], content_type: str,
               metadata: Mapping[str, str] | None) -> ObjectInfo:
        """Create a temp file, let ``fill`` write it and return the SHA-256, publish atomically."""
        path = self._path(key)
        meta = validate_metadata(dict(metadata or {}))
        with _mapped_errors(key):
            fd, tmp = self._mkstemp(key, path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    sha = fill(fh)
                    meta[SHA256_META] = sha
                    fh.flush()
                    os.fchmod(fh.fileno(), 0o644)
                    os.setxattr(fh.fileno(), XATTR, json.dumps(
                        {"content_type": content_type, "metadata": meta}).encode())
                    os.fsync(fh.fileno())
                    size = fh.tell()
                try:
                    os.replace(tmp, path)
                except IsADirectoryError:
                    raise InvalidKey(f"key {key!r} is a prefix of other objects on the local store") from None
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._fsync_dir(path.parent)
        return ObjectInfo(key=key, size=size, etag=sha, content_type=content_type, metadata=meta,
                          last_modified=dt.datetime.now(dt.timezone.utc))

    def _mkstemp(self, key: str, parent: Path) -> tuple[int, str]:
        # A concurrent delete may prune the freshly created parent; try again a few times.
        for _ in range(5):
            try:
                parent.mkdir(parents=True, exist_ok=True)
                return tempfile.mkstemp(dir=parent, prefix=TMP_PREFIX)
            except FileNotFoundError:
                continue
            except (FileExistsError, NotADirectoryError):
                raise InvalidKey(f"key {key!r} lies under an existing object on the local store") from None
        raise StorageError(f"could not create a temp file for {key!r}")

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
                  metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        def fill(fh: BinaryIO) -> str:
            fh.write(data)
            return hashlib.sha256(data).hexdigest()
        return self._write(key, fill, content_type, metadata)

    def put_stream(self, key: str, stream: BinaryIO, *, length: int | None = None,
                   content_type: str = "application/octet-stream",
                   metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        def fill(fh: BinaryIO) -> str:
            reader = HashingReader(stream, limit=length)
            while chunk := reader.read(_COPY_CHUNK):
                fh.write(chunk)
            if length is not None and reader.consumed != length:
                raise StorageError(f"{key}: stream ended after {reader.consumed} of {length} bytes")
            return reader.hexdigest()
        return self._write(key, fill, content_type, metadata)

    def put_file(self, key: str, path: str, *, content_type: str = "application/octet-stream",
                 metadata: Mapping[str, str] | None = None, move: bool = False,
                 sha256: str | None = None) -> ObjectInfo:
        """With ``move`` on the same filesystem: rename instead of copying (atomic, no second copy)."""
        src = Path(path)
        target = self._path(key)
        if not move or os.stat(src).st_dev != os.stat(self.root).st_dev:
            with open(src, "rb") as fh:
                return self.put_stream(key, fh, length=os.path.getsize(src), content_type=content_type,
                                       metadata=metadata)
        meta = validate_metadata(dict(metadata or {}))
        if sha256 is None:
            sha256 = file_sha256(src)
        meta[SHA256_META] = sha256
        with _mapped_errors(key):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(src, os.O_RDWR)
            try:
                os.fchmod(fd, 0o644)
                os.setxattr(fd, XATTR, json.dumps({"content_type": content_type, "metadata": meta}).encode())
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            try:
                os.replace(src, target)
            except IsADirectoryError:
                raise InvalidKey(f"key {key!r} is a prefix of other objects on the local store") from None
            self._fsync_dir(target.parent)
        return ObjectInfo(key=key, size=size, etag=sha256, content_type=content_type, metadata=meta,
                          last_modified=dt.datetime.now(dt.timezone.utc))

    def local_path(self, key: str) -> str:
        """The file behind ``key``, for native readers (OpenSlide) that need a path; never outside the root."""
        return str(self._path(key))

    # -- reads -------------------------------------------------------------
    def _open(self, key: str) -> BinaryIO:
        path = self._path(key)
        with _mapped_errors(key):
            return open(path, "rb")

    def get_bytes(self, key: str) -> bytes:
        with self._open(key) as fh, _mapped_errors(key):
            return fh.read()

    def open_stream(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        fh = self._open(key)  # raise ObjectNotFound now, not at first next()

        def chunks() -> Iterator[bytes]:
            with fh, _mapped_errors(key):
                while chunk := fh.read(chunk_size):
                    yield chunk
        return chunks()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise InvalidKey(f"range offset/length must be >= 0 (got {offset}, {length})")
        with self._open(key) as fh, _mapped_errors(key):
            fh.seek(offset)
            return fh.read(length)

    def open_ranged(self, key: str) -> RangeReader:
        return _FileRangeReader(self._open(key), key)

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        with _mapped_errors(key):
            st = os.stat(path)
            if not path.is_file():
                raise ObjectNotFound(f"no object {key!r}")
            try:
                stored = json.loads(os.getxattr(path, XATTR))
            except OSError as exc:
                if exc.errno != errno.ENODATA:
                    raise
                stored = {}  # a file dropped in by hand: no metadata, still an object
        meta = dict(stored.get("metadata", {}))
        return ObjectInfo(
            key=key, size=st.st_size,
            etag=meta.get(SHA256_META) or f"{st.st_mtime_ns:x}-{st.st_size:x}",
            content_type=stored.get("content_type", "application/octet-stream"),
            metadata=meta,
            last_modified=dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc))

    # -- namespace ---------------------------------------------------------
    def delete(self, key: str) -> None:
        path = self._path(key)
        with _mapped_errors(key):
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                return
            except IsADirectoryError:
                return  # a "directory" is not an object
            # Prune now-empty directories so the tree mirrors S3's flat namespace.
            parent = path.parent
            while parent != self.root:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        # Walk only the directory the prefix pins down, then sort by UTF-8 bytes
        # (S3's order; per-directory sorting would put "a/b" before "a-c").
        base_dir, _, _ = prefix.rpartition("/")
        start = self.root / base_dir if base_dir else self.root
        found: list[tuple[bytes, str, os.stat_result]] = []
        with _mapped_errors(prefix):
            if not start.is_dir():
                return iter(())
            for dirpath, dirnames, filenames in os.walk(start):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel_dir = os.path.relpath(dirpath, self.root)
                for name in filenames:
                    if name.startswith("."):
                        continue
                    key = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if key.startswith(prefix):
                        with contextlib.suppress(FileNotFoundError):
                            st = os.stat(os.path.join(dirpath, name), follow_symlinks=False)
                            found.append((key.encode(), key, st))
        found.sort()

        def infos() -> Iterator[ObjectInfo]:
            for _, key, st in found:
                yield ObjectInfo(key=key, size=st.st_size, etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
                                 last_modified=dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc))
        return infos()

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        self._path(dst_key)  # a bad destination is the caller's bug even if the source is missing
        src_info = self.stat(src_key)
        src_path = self._path(src_key)

        def fill(fh: BinaryIO) -> str:
            with open(src_path, "rb") as src:
                shutil.copyfileobj(src, fh, _COPY_CHUNK)
            return src_info.sha256 or ""
        meta = {k: v for k, v in src_info.metadata.items() if k != SHA256_META}
        info = self._write(dst_key, fill, src_info.content_type, meta)
        if not src_info.sha256:  # source had no hash: record the real one rather than ""
            return self.put_bytes(dst_key, self.get_bytes(dst_key), content_type=src_info.content_type,
                                  metadata=meta)
        return info

    def ping(self) -> None:
        if not (self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)):
            raise StorageUnavailable(f"{self.description} is missing or not writable")


class _FileRangeReader(RangeReader):
    """One open descriptor and ``pread``: no path resolution or open() per tile.

    The file object is closed by garbage collection when the last holder lets go,
    so a thread mid-read can never see its descriptor closed and reused. A key
    replaced on disk keeps serving the old inode: callers use this only for
    immutable objects (tile packs, whose keys change with the pyramid version).
    """

    def __init__(self, fh: BinaryIO, key: str) -> None:
        self._fh = fh
        self._fd = fh.fileno()
        self.key = key

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise InvalidKey(f"range offset/length must be >= 0 (got {offset}, {length})")
        with _mapped_errors(self.key):
            return os.pread(self._fd, length, offset)
