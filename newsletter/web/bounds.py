"""Bounds of a request head, apart from `limits` (which needs the server's classes) so the
CLI can show them as defaults without loading the web stack."""

MAX_HEAD_BYTES = 32 * 1024  # the raw request head as the server reads it (line, headers, CRLFs)
HEAD_TIMEOUT = 10.0  # seconds to send a whole request head
