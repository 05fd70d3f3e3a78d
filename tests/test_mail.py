from __future__ import annotations

import asyncio
import base64
import email.policy
from datetime import UTC, datetime
from email.parser import BytesParser
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from newsletter.config import MailSettings, Settings, SiteSettings
from newsletter.errors import PermanentFailure, TemporaryFailure
from newsletter.mail import Composer, Letter, MemoryMailer, OutboxMailer, SmtpMailer
from tests.conftest import SmtpSink

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def letter(to: str = "reader@example.org") -> Letter:
    return Letter(
        to=to,
        to_name="Siti Rahma",
        subject="Confirm your subscription",
        text="Plain words.\n",
        html="<html><head><style>p { color: red; }</style></head><body><p>Rich</p></body></html>",
        headers={
            "List-Unsubscribe": "<https://news.test/unsubscribe/t>, <mailto:n@news.test>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def settings_for(tmp_path: Path, **mail: str) -> Settings:
    return Settings(
        root=tmp_path,
        site=SiteSettings(base_url="https://news.test", title="The Asia Ledger"),
        mail=MailSettings(from_address="newsletter@news.test", **mail),
    )


def test_composed_message_has_the_headers_and_both_parts(tmp_path: Path) -> None:
    envelope = Composer(settings_for(tmp_path)).compose(letter(), NOW)
    message = BytesParser(policy=email.policy.default).parsebytes(envelope.data)
    assert message["From"] == "The Asia Ledger <newsletter@news.test>"
    assert message["To"] == "Siti Rahma <reader@example.org>"
    assert message["Message-ID"] == envelope.message_id
    assert message["Message-ID"].endswith("@news.test>")
    assert message["Date"] == "Fri, 20 Nov 2026 08:00:00 +0000"
    assert message["List-Id"] == "The Asia Ledger <digest.news.test>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n") == "Plain words.\n"
    assert '<p style="color: red;">Rich</p>' in html.get_content()  # CSS inlined
    assert "<style>" not in html.get_content()


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_dkim_signature_covers_the_unsubscribe_headers_and_verifies(
    tmp_path: Path, kind: str
) -> None:
    if kind == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    else:
        ed = ed25519.Ed25519PrivateKey.generate()
        raw = ed.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        key = base64.b64encode(raw)
        public = ed.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public)
    (tmp_path / "dkim.key").write_bytes(key)
    composer = Composer(settings_for(tmp_path, dkim_key_file="dkim.key", dkim_selector="s1"))
    data = composer.compose(letter(), NOW).data
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    signed = {
        h.strip().lower() for h in message["DKIM-Signature"].split("h=")[1].split(";")[0].split(":")
    }
    assert {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    } <= signed

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.news.test."
        return record

    assert dkim.verify(data, dnsfunc=dns)


def test_missing_dkim_key_is_a_config_error(tmp_path: Path) -> None:
    from newsletter.errors import ConfigError

    with pytest.raises(ConfigError, match=r"dkim_key_file = 'absent\.key' cannot be read"):
        Composer(settings_for(tmp_path, dkim_key_file="absent.key"))


def test_outbox_writes_one_eml_file_per_message(tmp_path: Path) -> None:
    composer = Composer(settings_for(tmp_path))
    outbox = OutboxMailer(tmp_path / "outbox")
    envelopes = [composer.compose(letter(f"r{n}@example.org"), NOW) for n in range(3)]
    for envelope in envelopes:
        asyncio.run(outbox.send(envelope))
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 3
    assert {f.read_bytes() for f in files} == {e.data for e in envelopes}


def test_memory_mailer_keeps_messages(tmp_path: Path) -> None:
    memory = MemoryMailer()
    asyncio.run(memory.send(Composer(settings_for(tmp_path)).compose(letter(), NOW)))
    assert [e.recipient for e in memory.sent] == ["reader@example.org"]


def test_smtp_pool_delivers_and_reuses_connections(
    tmp_path: Path, smtp_sink: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_sink
    composer = Composer(settings_for(tmp_path))
    mailer = SmtpMailer("127.0.0.1", port, "none", pool_size=2, timeout=10)

    async def send_all() -> None:
        await asyncio.gather(
            *(mailer.send(composer.compose(letter(f"r{n}@example.org"), NOW)) for n in range(20))
        )
        await mailer.close()

    asyncio.run(send_all())
    assert sorted(rcpt[0] for _f, rcpt, _d in sink.envelopes) == sorted(
        f"r{n}@example.org" for n in range(20)
    )
    assert sink.connections <= 2  # the pool, not one connection per message
    assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in sink.messages)


def test_smtp_5xx_is_permanent_and_4xx_temporary(
    tmp_path: Path, smtp_sink: tuple[SmtpSink, int]
) -> None:
    _sink, port = smtp_sink
    composer = Composer(settings_for(tmp_path))
    mailer = SmtpMailer("127.0.0.1", port, "none", pool_size=1, timeout=10)

    async def attempt(to: str) -> Exception | None:
        try:
            await mailer.send(composer.compose(letter(to), NOW))
        except Exception as exc:
            return exc
        return None

    async def run() -> list[Exception | None]:
        results = [
            await attempt("bounce@example.org"),
            await attempt("later@example.org"),
            await attempt("fine@example.org"),
        ]
        await mailer.close()
        return results

    bounced, deferred, fine = asyncio.run(run())
    assert isinstance(bounced, PermanentFailure) and bounced.code == 550
    assert isinstance(deferred, TemporaryFailure) and deferred.code == 451
    assert fine is None


def test_unreachable_smtp_server_is_a_temporary_failure(tmp_path: Path) -> None:
    from tests.helpers import free_port

    mailer = SmtpMailer("127.0.0.1", free_port(), "none", timeout=2)
    envelope = Composer(settings_for(tmp_path)).compose(letter(), NOW)
    with pytest.raises(TemporaryFailure, match="cannot connect"):
        asyncio.run(mailer.send(envelope))


def test_refusal_of_the_message_is_not_a_refusal_of_the_recipient(
    tmp_path: Path, smtp_sink: tuple[SmtpSink, int]
) -> None:
    from newsletter.errors import MessageRefused

    _sink, port = smtp_sink
    mailer = SmtpMailer("127.0.0.1", port, "none", pool_size=1, timeout=10)
    envelope = Composer(settings_for(tmp_path)).compose(letter("spamfilter@example.org"), NOW)

    async def run() -> Exception | None:
        try:
            await mailer.send(envelope)
        except Exception as exc:
            return exc
        finally:
            await mailer.close()
        return None

    refused = asyncio.run(run())
    assert isinstance(refused, MessageRefused)
    assert not isinstance(refused, PermanentFailure)
    assert refused.code == 554
