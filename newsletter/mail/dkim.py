"""DKIM signing with the configured key (RSA in PEM, or Ed25519 as base64 of its 32 bytes)."""

from __future__ import annotations

from dataclasses import dataclass

import dkim as dkimpy

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
        """The signer `[mail] dkim_key_file` asks for, None without one; ConfigError when
        the key cannot be read."""
        mail = settings.mail
        if not mail.dkim_key_file:
            return None
        path = settings.root / mail.dkim_key_file
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"[mail] dkim_key_file = {mail.dkim_key_file!r} cannot be read: {exc.strerror}"
            ) from None
        # dkimpy takes an Ed25519 key as 32 raw bytes base64-encoded; RSA keys are PEM
        algorithm = b"rsa-sha256" if b"-----BEGIN" in key else b"ed25519-sha256"
        domain = (mail.dkim_domain or default_domain).encode()
        return cls(mail.dkim_selector.encode(), domain, key, algorithm)

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
