"""Content sniffing: names never matter, bytes do."""

from __future__ import annotations

import pytest

from pathology_hub.slides.identify import Magic, sniff, sniff_bytes


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"", Magic.EMPTY),
        (b"II*\x00\x08\x00\x00\x00", Magic.TIFF),
        (b"MM\x00*\x00\x00\x00\x08", Magic.TIFF),
        (b"II+\x00\x08\x00\x00\x00", Magic.TIFF),  # BigTIFF
        (b"\x00" * 128 + b"DICM" + b"\x02\x00", Magic.DICOM),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", Magic.JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00", Magic.PNG),
        (b"PK\x03\x04\x14\x00", Magic.ZIP),
        (b"PK\x05\x06" + b"\x00" * 18, Magic.ZIP),
        (b"SQLite format 3\x00\x10\x00", Magic.SQLITE),
        (b"[GENERAL]\r\nSLIDE_VERSION = 01.02\r\nSLIDE_ID = 1\r\n", Magic.MRXS_INDEX),
        (b"[Virtual Microscope Specimen]\r\nNoLayers=1\r\n", Magic.VMS_INDEX),
        (b"SUkqAAgAAAAQAP4ABAABAAAAAAAAAAABAwABAAAA", Magic.TEXT),  # base64 of a TIFF
        (b"\x01\x02\x03\x04binary\x00junk", Magic.UNKNOWN),
    ],
)
def test_sniff_bytes(head: bytes, expected: Magic) -> None:
    assert sniff_bytes(head) is expected


def test_extension_is_ignored(tmp_path) -> None:
    fake = tmp_path / "slide.svs"
    fake.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    assert sniff(fake) is Magic.JPEG
    text = tmp_path / "photo.jpg"
    text.write_text("hello, this is not a photo\n")
    assert sniff(text) is Magic.TEXT
