"""MLLP: a message framed as 0x0B <message> 0x1C 0x0D over TCP, answered by one framed ACK."""

from __future__ import annotations

import socket
from dataclasses import dataclass

START, END = b"\x0b", b"\x1c\x0d"


class MllpUnavailable(Exception):
    """No answer: connection refused, timed out or closed before the ACK (retry later)."""


@dataclass(frozen=True)
class Ack:
    code: str          # AA, AE, AR (or CA/CE/CR in enhanced mode)
    control_id: str    # MSA-2: the control id of the message acknowledged
    text: str          # MSA-3 and ERR details, for an error


def frame(message: str) -> bytes:
    return START + message.encode("utf-8") + END


def unframe(data: bytes) -> str:
    start = data.find(START)
    end = data.find(END, start + 1)
    if start < 0 or end < 0:
        raise ValueError("not an MLLP frame")
    return data[start + 1:end].decode("utf-8", errors="replace")


def send(host: str, port: int, message: str, timeout: float) -> str:
    """Send one message and return the reply's text; raise :class:`MllpUnavailable` without one."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(frame(message))
            buf = b""
            while END not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise MllpUnavailable("connection closed before an ACK arrived")
                buf += chunk
                if len(buf) > 1_000_000:
                    raise MllpUnavailable("ACK too large")
    except TimeoutError:
        raise MllpUnavailable(f"no ACK within {timeout:g} s") from None
    except OSError as exc:
        raise MllpUnavailable(f"{type(exc).__name__}: {exc}") from None
    return unframe(buf)


def parse_ack(text: str) -> Ack:
    """Read MSA (and ERR) of an ACK with hl7apy's parser; an unreadable reply is an error ACK."""
    from hl7apy.parser import parse_message
    try:
        msg = parse_message(text.replace("\n", "\r"), find_groups=False)
        msa = msg.msa
        code = msa.msa_1.value or ""
        control = msa.msa_2.value or ""
        details = [msa.msa_3.value or ""]
        # ERR's layout changed between versions (ERR-1 in 2.3, ERR-8 in 2.5): keep its text whole.
        details += [seg[4:].replace("^", " ").replace("|", " ").strip()
                    for seg in text.replace("\n", "\r").split("\r") if seg.startswith("ERR|")]
        text_out = " ".join(d for d in details if d).strip()
    except Exception as exc:  # noqa: BLE001 - a garbled ACK is reported, not crashed on
        return Ack("AE", "", f"unreadable ACK: {exc}"[:500])
    return Ack(code.strip(), control.strip(), text_out)
