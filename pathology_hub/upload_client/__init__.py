"""Uploading from scanner workstations: the tus client side (tuspy), no Flask.

Resumable by design: the upload URL of every file in flight is kept in a small
state file (tuspy's ``FileStorage``), so a run interrupted by a dropped network
or a reboot continues from the server's offset the next time it is started.

Fast by design: tuspy's own ``Uploader`` reads a chunk, checksums it and only
then sends it, so disk and hashing time add to network time. Here the next
chunk is read and checksummed in a background thread while the current one is
on the wire (two reused buffers, sent as ``memoryview`` without a copy), and
one keep-alive ``requests.Session`` carries every request. The tus protocol
itself (creation, offsets, ``Upload-Checksum``, retries from the server's
offset) stays tuspy's: :class:`PipelinedUploader` subclasses its ``Uploader``.

Integrity end to end: the whole-file SHA-256 is computed by the reader thread
from the chunks as they are read, and declared with the last chunk in a
``Repr-Digest`` header (RFC 9530, as the IETF resumable-uploads draft uses it);
the server verifies it *before* it hands the file to the application. Each
chunk also carries a SHA-1 ``Upload-Checksum`` that the server checks before
it keeps the chunk (a corrupted chunk is discarded and resent). Hashing while
sending, instead of in a pass before the first byte, saved a quarter of the
upload time on loopback (bench/upload.py). A resumed upload reads back the
bytes an earlier run sent, once, to continue the hash; a file modified during
the upload is refused before its last chunk.

Outages: a server that answers "not now" (503 or 423 with ``Retry-After``: e.g. every byte
arrived but object storage is down, so the server keeps the file and stores it later) is waited
out as told for up to ``storage_wait`` seconds, without counting as failed attempts; the client
then resumes with HEAD, so no byte the server already has is sent again.

Package layout (one job per module):

* :mod:`.transport` — the pipelined tus client (tuspy's protocol, our reading, hashing, waiting);
* :mod:`.api` — the platform's endpoints: cases, duplicates, sending a file, the verdict;
* :mod:`.watcher` — the watch folder of a scanner workstation;
* :mod:`.hashing` — whole-file SHA-256 and chunk digests in one read;
* :mod:`.errors` — the user-facing errors.

``flask upload`` / ``flask watch`` and ``from pathology_hub.upload_client import HubUploader`` keep
working: the public names are re-exported here.
"""

from __future__ import annotations

from pathology_hub.upload_client.api import ACCEPTED, REFUSED, HubUploader, UploadResult, Verdict
from pathology_hub.upload_client.errors import DuplicateSlide, UploadError
from pathology_hub.upload_client.hashing import hash_file, sha256_of
from pathology_hub.upload_client.transport import CHUNK_CHECKSUM, DEFAULT_CHUNK, ChunkReader, PipelinedUploader
from pathology_hub.upload_client.watcher import case_number_from, describe, settled_files, watch

__all__ = [
    "ACCEPTED", "CHUNK_CHECKSUM", "DEFAULT_CHUNK", "REFUSED", "ChunkReader", "DuplicateSlide", "HubUploader",
    "PipelinedUploader", "UploadError", "UploadResult", "Verdict", "case_number_from", "describe", "hash_file",
    "settled_files", "sha256_of", "watch",
]
