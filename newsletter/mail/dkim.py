"""DKIM signing with the configured key (RSA in PEM, or Ed25519 as base64 of its 32 bytes)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import dkim as dkimpy
import nacl.exceptions
import nacl.signing
from dkim.crypto import parse_pem_private_key

from newsletter.config import Settings
from newsletter.errors import ConfigError

# RFC 8058 section 4: the DKIM signature must cover List-Unsubscribe and
# List-Unsubscribe-Post, or receivers ignore one-click unsubscribe.
SIGNED_HEADERS = [
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"MIME-Version",
    b"Content-Type",
]


@dataclass(frozen=True)
class Signer:
    selector: bytes
    domain: bytes
    key: bytes
    algorithm: bytes

    @classmethod
    def from_settings(cls, settings: Settings, default_domain: str) -> Signer | None:
        """The signer `[mail] dkim_key_file` asks for, None without one. The key is loaded
        and a message signed with it here, at start: ConfigError naming the setting when
        the key cannot be read or is not a usable key (rather than every message failing)."""
        mail = settings.mail
        if not mail.dkim_key_file:
            return None
        setting = f"[mail] dkim_key_file = {mail.dkim_key_file!r}"
        path = settings.root / mail.dkim_key_file
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{setting} cannot be read: {exc.strerror}") from None
        # dkimpy takes an Ed25519 key as 32 raw bytes base64-encoded; RSA keys are PEM
        if b"-----BEGIN" in key:
            algorithm = b"rsa-sha256"
            key = key.replace(b"\r\n", b"\n")  # dkimpy reads PEM with LF line ends only
            problem = _rsa_problem(key)
        else:
            algorithm = b"ed25519-sha256"
            key, problem = _ed25519_key(key)
        if problem:
            raise ConfigError(f"{setting} is not a usable DKIM key: {problem}")
        domain = (mail.dkim_domain or default_domain).encode()
        signer = cls(mail.dkim_selector.encode(), domain, key, algorithm)
        try:
            signer.sign(b"From: <probe@" + domain + b">\r\n\r\nprobe\r\n", {"from"})
        except Exception as exc:  # a key dkimpy reads but cannot sign with
            raise ConfigError(f"{setting} is not a usable DKIM key: {exc}") from None
        return signer

    def sign(self, data: bytes, present: set[str]) -> bytes:
        """The DKIM-Signature header line for message `data`, covering those of
        SIGNED_HEADERS that are `present` in it."""
        headers = [h for h in SIGNED_HEADERS if h.decode().lower() in present]
        signature: bytes = dkimpy.sign(
            data,
            self.selector,
            self.domain,
            self.key,
            include_headers=headers,
            signature_algorithm=self.algorithm,
        )
        return signature


_EXPECTED = (
    "expected an RSA private key in PEM (-----BEGIN RSA PRIVATE KEY----- or -----BEGIN "
    "PRIVATE KEY-----) or an Ed25519 private key as the base64 of its 32 raw bytes"
)


def _rsa_problem(key: bytes) -> str | None:
    """What is wrong with a PEM `key` for RSA signing, None when it is usable."""
    try:
        parsed = parse_pem_private_key(key)
    except Exception:  # whatever the ASN.1 reader makes of arbitrary bytes
        return "not an RSA private key in PEM that can be read; " + _EXPECTED
    bits = int(parsed["modulus"]).bit_length()
    if bits < 1024:
        return f"an RSA key of {bits} bits; receivers ignore signatures by keys under 1024"
    return None


def _ed25519_key(key: bytes) -> tuple[bytes, str | None]:
    """The key as dkimpy takes it (base64 of the 32 raw bytes, without whitespace) and what
    is wrong with it (None when it is usable)."""
    try:
        raw = base64.b64decode(b"".join(key.split()), validate=True)
    except binascii.Error:
        return key, "not base64; " + _EXPECTED
    if len(raw) != 32:
        return key, f"{len(raw)} bytes of base64, not 32; " + _EXPECTED
    try:
        nacl.signing.SigningKey(raw)
    except (nacl.exceptions.ValueError, nacl.exceptions.TypeError) as exc:
        return key, f"not an Ed25519 key: {exc}"
    return base64.b64encode(raw), None
