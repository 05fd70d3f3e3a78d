"""Quoted-printable (RFC 2045 section 6.7) for prepared messages: lines of at most 76
characters, CRLF line ends, and no line that starts with "." or "From " (encoded as =2E
and =46), so the bytes can go into SMTP DATA as they are, with no dot-stuffing and no
rewriting by mail servers that guard mbox files.

Text is encoded in pieces that each end at a line end (a hard CRLF or a soft "=" CRLF):
the parts of a message that differ per recipient are encoded on their own and placed
between prebuilt pieces without disturbing any line.
"""

from __future__ import annotations

import re

MAX_LINE = 76
_PLAIN = re.compile(r"[!-<>-~ ]*\Z")  # printable ASCII and space, but "="
_SAFE = frozenset(b for b in range(33, 127) if b != ord("=")) | {ord(" "), ord("\t")}
_ESCAPES = [f"={b:02X}".encode() for b in range(256)]


def encode_piece(text: str) -> bytes:
    """`text` quoted-printable, ending at a line end: a final line without a newline ends
    with a soft line break, so whatever follows starts a new line and the decoded text
    runs on without a break."""
    if not text:
        return b""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[bytes] = []
    last = len(lines) - 1
    for n, line in enumerate(lines):
        if n == last and not line:
            break  # the text ended with a newline: its last line is already closed
        out.append(_plain_line(line) or _encode_line(line.encode("utf-8")))
        out.append(b"\r\n" if n < last else b"=\r\n")
    return b"".join(out)


def _plain_line(line: str) -> bytes | None:
    """The common case, fast (per-recipient values: links, addresses, names): a line of
    printable ASCII without "=" needs no escapes, only folding; None for any other."""
    if not _PLAIN.match(line) or line.endswith(" "):
        return None
    width = MAX_LINE - 1
    chunks = [line[i : i + width] for i in range(0, len(line), width)] or [""]
    if any(c.startswith((".", "From ")) for c in chunks):
        return None
    return "=\r\n".join(chunks).encode("ascii")


def _encode_line(raw: bytes) -> bytes:
    """One line of text, folded with soft breaks into lines of at most 76 characters."""
    tokens = [raw[i : i + 1] if b in _SAFE else _ESCAPES[b] for i, b in enumerate(raw)]
    if tokens and tokens[-1] in (b" ", b"\t"):
        tokens[-1] = _ESCAPES[raw[-1]]  # whitespace ending a line would be dropped
    folded: list[bytes] = []
    length = 0
    for i, token in enumerate(tokens):
        # room for the token and, on a line that goes on, the soft break's "="
        if length + len(token) > MAX_LINE - 1:
            folded.append(b"=\r\n")
            length = 0
        if length == 0:
            if token == b".":
                token = b"=2E"  # SMTP would take a leading dot for the end or stuff it
            elif token == b"F" and raw.startswith(b"rom ", i + 1):
                token = b"=46"  # mbox-guarding servers would rewrite "From " to ">From "
        folded.append(token)
        length += len(token)
    return b"".join(folded)
