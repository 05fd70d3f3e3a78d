"""DKIM signing (RFC 6376, relaxed/relaxed) through OpenSSL, with the configured keys: RSA
in PEM (the signature every receiver checks) and, optionally, an additional Ed25519 one
(RFC 8463; not every receiver checks it, so it never stands alone unless configured so).

Signing is split so that a message built from prebuilt pieces is cheap to sign: the body
hash is taken over canonical pieces the caller prepared once, and only the headers are
canonicalised per message. RSA signing releases the GIL, so a worker thread signs while
the event loop goes on.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from newsletter.config import Settings
from newsletter.errors import ConfigError

# RFC 8058 section 4: the signature must cover List-Unsubscribe and List-Unsubscribe-Post,
# or receivers ignore one-click unsubscribe.
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
)
_WSP = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")

Field = tuple[str, str]  # (name, value as written after the colon, folding included)


def canonical_header(name: str, value: str) -> bytes:
    """Relaxed header canonicalisation (RFC 6376 section 3.4.2)."""
    unfolded = value.encode("utf-8").replace(b"\r\n", b"")
    return name.strip().lower().encode() + b":" + _WSP.sub(b" ", unfolded).strip(b" \t") + b"\r\n"


def canonical_lines(piece: bytes) -> bytes:
    """Relaxed body canonicalisation of whole CRLF-ended lines, without the removal of
    empty lines at the end: pieces canonicalised apart join to the canonical whole."""
    return _TRAILING_WSP.sub(b"\r\n", _WSP.sub(b" ", piece))


def canonical_body(body: bytes) -> bytes:
    body = canonical_lines(body if body.endswith(b"\r\n") or not body else body + b"\r\n")
    while body.endswith(b"\r\n\r\n"):
        body = body[:-2]
    return b"" if body == b"\r\n" else body


def body_hash(canonical_pieces: Iterable[bytes]) -> bytes:
    digest = hashlib.sha256()
    for piece in canonical_pieces:
        digest.update(piece)
    return base64.b64encode(digest.digest())


@dataclass(frozen=True)
class Key:
    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    selector: str = ""  # where its public key is published (one key per DNS record)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        # RFC 8463: Ed25519 signs the SHA-256 hash of the canonical header data
        return self.private.sign(hashlib.sha256(data).digest())


@dataclass(frozen=True)
class Signer:
    selector: str
    domain: str
    keys: tuple[Key, ...]

    @classmethod
    def from_settings(cls, settings: Settings, default_domain: str) -> Signer | None:
        """The signer `[mail] dkim_key_file` (and `dkim_ed25519_key_file`) ask for, None
        without a key. Keys are loaded and tried here, at start: ConfigError naming the
        setting when one cannot be read or used (rather than every message failing)."""
        mail = settings.mail
        ed_selector = mail.dkim_ed25519_selector or f"{mail.dkim_selector}-ed25519"
        keys = [
            dataclasses.replace(_load(settings, name, path), selector=selector)
            for name, path, selector in (
                ("dkim_key_file", mail.dkim_key_file, mail.dkim_selector),
                ("dkim_ed25519_key_file", mail.dkim_ed25519_key_file, ed_selector),
            )
            if path
        ]
        if not keys:
            return None
        if mail.dkim_ed25519_key_file and keys[-1].algorithm != "ed25519-sha256":
            raise ConfigError(
                f"[mail] dkim_ed25519_key_file = {mail.dkim_ed25519_key_file!r} is not an "
                "Ed25519 key; expected the base64 of its 32 raw bytes"
            )
        return cls(mail.dkim_selector, mail.dkim_domain or default_domain, tuple(keys))

    def signatures(self, fields: Sequence[Field], canonical_body_hash: bytes) -> bytes:
        """DKIM-Signature header lines (one per key, RSA first) for a message with these
        header fields and body hash (base64 of SHA-256 of the canonical body)."""
        present = {name.lower(): value for name, value in fields}  # the last one counts
        names = [h for h in SIGNED_HEADERS if h in present]
        signed = b"".join(canonical_header(h, present[h]) for h in names)
        lines = []
        for key in self.keys:
            value = (
                f" v=1; a={key.algorithm}; c=relaxed/relaxed; d={self.domain};\r\n"
                f" s={key.selector or self.selector}; t={int(time.time())};\r\n"
                f" h={':'.join(names)};\r\n bh={canonical_body_hash.decode()};\r\n b="
            )
            data = signed + canonical_header("DKIM-Signature", value)[:-2]
            signature = base64.b64encode(key.sign(data)).decode()
            folded = "\r\n ".join(signature[i : i + 72] for i in range(0, len(signature), 72))
            lines.append(f"DKIM-Signature:{value}{folded}\r\n".encode())
        return b"".join(lines)

    def sign(self, message: bytes) -> bytes:
        """The DKIM-Signature header lines for a whole CRLF message."""
        head, _, body = message.partition(b"\r\n\r\n")
        return self.signatures(parse_fields(head), body_hash([canonical_body(body)]))


def parse_fields(head: bytes) -> list[Field]:
    """A CRLF header block as (name, value) fields, folding kept in the values."""
    fields = []
    for raw in _unfolded_fields(head):
        name, _, value = raw.partition(b":")
        fields.append((name.decode("ascii", "replace"), value.decode("utf-8", "replace")))
    return fields


def _unfolded_fields(head: bytes) -> list[bytes]:
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return fields


_EXPECTED = (
    "expected an RSA private key in PEM (-----BEGIN RSA PRIVATE KEY----- or -----BEGIN "
    "PRIVATE KEY-----) or an Ed25519 private key as the base64 of its 32 raw bytes"
)


def _load(settings: Settings, setting: str, path: str) -> Key:
    where = f"[mail] {setting} = {path!r}"
    try:
        raw = (settings.root / path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror}") from None
    if b"-----BEGIN" in raw:
        try:
            private = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigError(f"{where} is not a usable DKIM key: {exc}; {_EXPECTED}") from None
        if isinstance(private, ed25519.Ed25519PrivateKey):
            return Key("ed25519-sha256", private)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ConfigError(f"{where} is not a usable DKIM key: {_EXPECTED}")
        if private.key_size < 1024:
            raise ConfigError(
                f"{where} is not a usable DKIM key: an RSA key of {private.key_size} bits; "
                "receivers ignore signatures by keys under 1024"
            )
        return Key("rsa-sha256", private)
    try:
        seed = base64.b64decode(b"".join(raw.split()), validate=True)
    except binascii.Error:
        raise ConfigError(f"{where} is not a usable DKIM key: not base64; {_EXPECTED}") from None
    if len(seed) != 32:
        raise ConfigError(
            f"{where} is not a usable DKIM key: {len(seed)} bytes of base64, not 32; {_EXPECTED}"
        )
    return Key("ed25519-sha256", ed25519.Ed25519PrivateKey.from_private_bytes(seed))
