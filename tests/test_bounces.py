"""Bounces that come back later: delivery status notifications and complaint reports as
relays and mailbox providers send them, read from a real IMAP or POP3 server on loopback
(tests/imap_server.py, tests/pop3_server.py), and provider webhooks signed with keys made
here; on deliveries sent through the real digest flow to an SMTP sink.

Decisions the tests pin down:
- hard bounces and complaints suppress at once; soft ones (delayed, 4.x.x, 5.2.2, 5.7.x)
  only when the subscriber's last `soft_limit` sent deliveries all soft-bounced, so a
  delivery that did not bounce in between starts the count again;
- a report with a VERP address whose mac is wrong suppresses nobody and is not stored;
- mail in the bounce mailbox that is no report (auto-replies, read receipts, garbage) is
  deleted with the rest, so that it is not read again at every poll;
- a report about nobody we know is counted and dropped.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlmodel import Session
from starlette.testclient import TestClient

from newsletter import services, storage
from newsletter.bounces import Bounces, MailboxError, parse
from newsletter.bounces.reports import Report
from newsletter.cli import main
from newsletter.config import BouncesSettings, Settings
from newsletter.errors import ConfigError
from newsletter.mail import verp
from newsletter.models import Bounce, BounceKind, Delivery
from newsletter.scheduler import BOUNCES_JOB, DigestScheduler
from newsletter.web import create_app
from tests.conftest import SmtpSink
from tests.digest_helpers import T0, Clock, post, reader, wired
from tests.helpers import free_port
from tests.imap_server import ImapServer
from tests.pop3_server import Pop3Server

USER, PASSWORD = "bounce@example.org", "s3cret: pass/word"
SECRET = b"a test secret"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def imap() -> Iterator[ImapServer]:
    with ImapServer(USER, PASSWORD) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


def mailbox_url(scheme: str, port: int, password: str = PASSWORD) -> str:
    return f"{scheme}://{quote(USER, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}/INBOX"


def with_bounces(settings: Settings, **values: Any) -> Settings:
    return dataclasses.replace(settings, bounces=BouncesSettings(**values))


@pytest.fixture
def svc(
    settings: Settings,
    engine: sa.Engine,
    smtp_sink: tuple[SmtpSink, int],
    clock: Clock,
    imap: ImapServer,
) -> services.Services:
    cfg = with_bounces(settings, mailbox=mailbox_url("imap", imap.port), soft_limit=2)
    return wired(cfg, engine, smtp_sink[1], clock)


def issue(svc: services.Services, story: str, clock: Clock) -> dict[str, Delivery]:
    """Send an issue with one new post to every subscriber; their ledger rows by address."""
    clock.set(clock() + timedelta(hours=1))
    post(svc.engine, svc.settings, story, clock() - timedelta(minutes=5), ["asia"])
    run = svc.digests.send_now("digest")

    async def send() -> None:
        try:
            await svc.digests.deliver(run.id)
        finally:
            await svc.mailer.close()

    asyncio.run(send())
    rows = svc.digests.ledger(run.id)
    with Session(svc.engine) as session:
        emails = {
            row.subscriber_id: storage.subscriber_by_id(session, row.subscriber_id) for row in rows
        }
    found = {}
    for row in rows:
        subscriber = emails[row.subscriber_id]
        assert subscriber is not None and row.status == "sent", row
        found[subscriber.email] = row
    return found


def verp_of(settings: Settings, delivery: Delivery) -> str:
    assert delivery.id is not None
    return verp.encode(settings.secret, settings.return_path, delivery.id)


def suppressed(engine: sa.Engine, *emails: str) -> dict[str, str]:
    with Session(engine) as session:
        return {e: s.reason for e, s in storage.suppressions_for(session, emails).items()}


def bounces(engine: sa.Engine) -> list[Bounce]:
    with Session(engine) as session:
        return sorted(storage.recent_bounces(session, 100), key=lambda b: b.id or 0)


# ----------------------------------------------------------------------------- reports


def original_message(to: str, return_path: str, message_id: str | None = None) -> EmailMessage:
    """A digest as the receiving server saw it."""
    message = EmailMessage()
    message["Return-Path"] = f"<{return_path}>"
    message["From"] = "The Asia Ledger <newsletter@localhost>"
    message["To"] = to
    message["Subject"] = "Morning Ledger: 20 November"
    message["Message-ID"] = message_id or make_msgid(domain="localhost")
    message.set_content("Today in Asia...")
    return message


def dsn(
    to: str,
    recipient: str,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
    original: EmailMessage | None = None,
    headers_only: bool = True,
    message_id: str | None = None,
) -> bytes:
    """A delivery status notification the way Postfix writes one: a human part, the
    machine-readable part (message/delivery-status: one block about the message, one per
    recipient) and the original's headers (or the whole original with `headers_only`
    False, as Exchange and Gmail send it)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["Return-Path"] = "<>"
    report["Delivered-To"] = to
    report["From"] = "MAILER-DAEMON@mx.example.net (Mail Delivery System)"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = formatdate()
    report["Message-ID"] = message_id or make_msgid(domain="mx.example.net")
    report["Auto-Submitted"] = "auto-replied"
    report.attach(
        MIMEText(
            "This is the mail system at host mx.example.net.\n\n"
            "I'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients.\n"
        )
    )
    about_message = Message()
    about_message["Reporting-MTA"] = "dns; mx.example.net"
    about_message["X-Postfix-Queue-ID"] = "4XyZ1234"
    about_message["Arrival-Date"] = formatdate()
    about_recipient = Message()
    about_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    about_recipient["Original-Recipient"] = f"rfc822;{recipient}"
    about_recipient["Action"] = action
    about_recipient["Status"] = status
    about_recipient["Remote-MTA"] = "dns; mx2.example.net"
    about_recipient["Diagnostic-Code"] = diagnostic.format(r=recipient)
    status_part = Message()
    status_part.set_type("message/delivery-status")
    status_part.set_payload([about_message, about_recipient])
    report.attach(status_part)
    original = original or original_message(recipient, to)
    if headers_only:
        headers = MIMEText("", "rfc822-headers")
        headers.set_payload(
            "".join(f"{name}: {value}\n" for name, value in original.items()), "us-ascii"
        )
        report.attach(headers)
    else:
        report.attach(MIMEMessage(original))
    return report.as_bytes()


def arf(
    recipient: str,
    original: EmailMessage,
    *,
    feedback_type: str = "abuse",
    redacted: bool = False,
) -> bytes:
    """A complaint report (RFC 5965) as a mailbox provider's feedback loop sends one, to
    the plain bounce address; the original (with its VERP Return-Path) attached."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "Feedback Loop <fbl@mail.example.net>"
    report["To"] = "bounces@localhost"
    report["Subject"] = "Email Abuse Report"
    report["Date"] = formatdate()
    report["Message-ID"] = make_msgid(domain="fbl.example.net")
    report.attach(MIMEText("This is an email abuse report for an email message received.\n"))
    fields = Message()
    fields["Feedback-Type"] = feedback_type
    fields["User-Agent"] = "ExampleFBL/1.0"
    fields["Version"] = "1"
    fields["Original-Mail-From"] = original["Return-Path"]
    if not redacted:
        fields["Original-Rcpt-To"] = recipient
    fields["Arrival-Date"] = formatdate()
    fields["Source-IP"] = "192.0.2.1"
    feedback = Message()
    feedback.set_type("message/feedback-report")
    feedback.set_payload([fields])
    report.attach(feedback)
    report.attach(MIMEMessage(original))
    return report.as_bytes()


def test_a_postfix_dsn_is_a_hard_bounce_of_the_delivery_its_verp_names() -> None:
    to = verp.encode(SECRET, "bounces@localhost", 42)
    [report] = parse(dsn(to, "gone@example.net", message_id="<dsn-1@mx>"), SECRET)
    assert report == Report(
        BounceKind.hard,
        "gone@example.net",
        "5.1.1",
        "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown",
        42,
        "<dsn-1@mx>",
        report.message_id,
    )
    assert report.message_id and report.message_id.endswith("@localhost>")


@pytest.mark.parametrize(
    ("action", "status", "kind"),
    [
        ("failed", "5.1.1", BounceKind.hard),
        ("failed", "5.0.0", BounceKind.hard),
        ("failed", "5.2.2", BounceKind.soft),  # mailbox full
        ("failed", "5.7.1", BounceKind.soft),  # a policy block: about our server
        ("failed", "4.4.7", BounceKind.soft),  # the relay gave up on a temporary failure
        ("delayed", "4.4.1", BounceKind.soft),
        ("Delayed", "4.2.0 (mailbox busy)", BounceKind.soft),
        ("delivered", "2.0.0", None),
        ("relayed", "2.0.0", None),
        ("expanded", "2.0.0", None),
    ],
)
def test_the_action_and_status_decide_the_kind(
    action: str, status: str, kind: BounceKind | None
) -> None:
    to = verp.encode(SECRET, "bounces@localhost", 7)
    found = parse(dsn(to, "r@example.net", action=action, status=status), SECRET)
    assert [r.kind for r in found] == ([kind] if kind else [])


def test_the_verp_of_the_quoted_original_or_its_message_id_is_kept() -> None:
    return_path = verp.encode(SECRET, "bounces@localhost", 9)
    original = original_message("r@example.net", return_path, "<digest.3.4.0123456789ab@x>")
    raw = dsn("bounces@localhost", "r@example.net", original=original, headers_only=False)
    [report] = parse(raw, SECRET)
    assert (report.delivery_id, report.message_id) == (9, "<digest.3.4.0123456789ab@x>")


def test_a_complaint_names_the_reader_from_the_report_or_the_quoted_message() -> None:
    return_path = verp.encode(SECRET, "bounces@localhost", 11)
    original = original_message("reader@example.net", return_path)
    [report] = parse(arf("reader@example.net", original), SECRET)
    assert (report.kind, report.email, report.delivery_id) == (
        BounceKind.complaint,
        "reader@example.net",
        11,
    )
    [redacted] = parse(arf("", original, redacted=True), SECRET)
    assert redacted.email == "reader@example.net"
    assert parse(arf("reader@example.net", original, feedback_type="not-spam"), SECRET) == []
    assert parse(arf("reader@example.net", original, feedback_type="auth-failure"), SECRET) == []


def test_a_report_without_a_message_id_is_keyed_by_its_bytes() -> None:
    raw = dsn("bounces@localhost", "r@example.net")
    without = raw.replace(b"Message-ID:", b"X-Old-Id:", 1)
    [report] = parse(without, SECRET)
    assert report.external_id == "sha256:" + hashlib.sha256(without).hexdigest()


def test_a_forged_verp_mac_is_flagged() -> None:
    genuine = verp.encode(SECRET, "bounces@localhost", 5)
    forged = genuine[: genuine.index("-") + 1] + "0000000000@localhost"
    [report] = parse(dsn(forged, "r@example.net"), SECRET)
    assert (report.delivery_id, report.tampered) == (None, True)


def auto_reply() -> bytes:
    message = EmailMessage()
    message["From"] = "reader@example.net"
    message["To"] = "bounces+5-0123456789@localhost"
    message["Subject"] = "Out of office: Morning Ledger"
    message["Auto-Submitted"] = "auto-replied"
    message.set_content("I am away until Monday. Status: 5.1.1 Action: failed")
    return message.as_bytes()


def read_receipt() -> bytes:
    report = MIMEMultipart("report", report_type="disposition-notification")
    report["From"] = "reader@example.net"
    report["To"] = "bounces@localhost"
    report.attach(MIMEText("Your message was displayed."))
    fields = Message()
    fields["Final-Recipient"] = "rfc822; reader@example.net"
    fields["Disposition"] = "manual-action/MDN-sent-manually; displayed"
    part = Message()
    part.set_type("message/disposition-notification")
    part.set_payload([fields])
    report.attach(part)
    return report.as_bytes()


HOSTILE = [
    b"",
    b"\x00\xff" * 100,
    b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno boundary",
    b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\n"
    b"Content-Type: message/delivery-status\r\n\r\n\r\n\r\nAction: failed\r\n--x--\r\n",
    # nested far deeper than any real message
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
    + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 2000,
    b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\n"
    b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"!!!not base64\r\n--x--\r\n",
    b"To: \xc3\x28 <" + b"a" * 10000 + b"@x>\r\n\r\n",
]


@pytest.mark.parametrize("raw", [auto_reply(), read_receipt(), *HOSTILE])
def test_mail_that_is_no_report_yields_none(raw: bytes) -> None:
    assert parse(raw, SECRET) == []


def test_mangled_reports_never_raise() -> None:
    """Bytes of real reports cut, flipped and repeated: parse answers, whatever it finds."""
    samples = [
        dsn(verp.encode(SECRET, "bounces@localhost", 3), "r@example.net"),
        arf("r@example.net", original_message("r@example.net", "bounces+1-00@localhost")),
    ]
    chaos = random.Random(5)
    for _ in range(300):
        data = bytearray(chaos.choice(samples))
        for _ in range(chaos.randint(1, 20)):
            at = chaos.randrange(len(data))
            move = chaos.random()
            if move < 0.4:
                data[at] = chaos.randrange(256)
            elif move < 0.7:
                del data[at : at + chaos.randint(1, 200)]
            else:
                data[at:at] = data[at : at + chaos.randint(1, 300)]
        for report in parse(bytes(data), SECRET):
            assert len(report.external_id) <= 300 and len(report.diagnostic) <= 1000


# ----------------------------------------------------------------------------- the mailbox


def test_hard_bounce_and_complaint_from_imap_suppress_at_once(
    svc: services.Services, imap: ImapServer, clock: Clock
) -> None:
    for email in ("gone@example.net", "angry@example.net", "happy@example.net"):
        reader(svc.engine, svc.settings, email)
    sent = issue(svc, "monsoon", clock)
    imap.deliver(dsn(verp_of(svc.settings, sent["gone@example.net"]), "gone@example.net"))
    original = original_message(
        "angry@example.net", verp_of(svc.settings, sent["angry@example.net"])
    )
    imap.deliver(arf("angry@example.net", original))

    polled = svc.bounces.poll()

    assert (polled.source, polled.messages, polled.recorded) == ("imap", 2, 2)
    assert suppressed(svc.engine, *sent) == {
        "gone@example.net": "bounced",
        "angry@example.net": "complained",
    }
    recorded = bounces(svc.engine)
    assert [(b.email, b.kind, b.status, b.source, b.delivery_id) for b in recorded] == [
        ("gone@example.net", "hard", "5.1.1", "imap", sent["gone@example.net"].id),
        ("angry@example.net", "complaint", "", "imap", sent["angry@example.net"].id),
    ]
    assert imap.inbox() == []  # recorded, then deleted


def test_the_delivery_not_the_report_says_whose_address_it_is(
    svc: services.Services, imap: ImapServer, clock: Clock
) -> None:
    reader(svc.engine, svc.settings, "ayu@example.net")
    sent = issue(svc, "tariffs", clock)
    # a forwarding address bounced: the report names it, the VERP names Ayu's delivery
    imap.deliver(dsn(verp_of(svc.settings, sent["ayu@example.net"]), "ayu@forward.example"))
    svc.bounces.poll()
    assert suppressed(svc.engine, "ayu@example.net", "ayu@forward.example") == {
        "ayu@example.net": "bounced"
    }


def test_soft_bounces_suppress_only_after_soft_limit_in_a_row(
    svc: services.Services, imap: ImapServer, clock: Clock
) -> None:
    """soft_limit is 2 here. Stuffed: soft, soft -> suppressed. Busy: soft, no bounce, soft ->
    not (the delivery in between went through)."""
    for email in ("stuffed@example.net", "busy@example.net"):
        reader(svc.engine, svc.settings, email)
    first = issue(svc, "first", clock)
    for email in first:
        imap.deliver(
            dsn(verp_of(svc.settings, first[email]), email, action="delayed", status="4.4.1")
        )
    assert svc.bounces.poll().recorded == 2
    assert suppressed(svc.engine, *first) == {}

    second = issue(svc, "second", clock)
    imap.deliver(
        dsn(
            verp_of(svc.settings, second["stuffed@example.net"]),
            "stuffed@example.net",
            status="5.2.2",
            diagnostic="smtp; 552 5.2.2 Mailbox full",
        )
    )
    polled = svc.bounces.poll()
    assert polled.suppressed == [("stuffed@example.net", "bounced")]

    third = issue(svc, "third", clock)
    assert "stuffed@example.net" not in third  # suppressed: not mailed any more
    imap.deliver(
        dsn(verp_of(svc.settings, third["busy@example.net"]), "busy@example.net", status="4.2.1")
    )
    svc.bounces.poll()
    assert suppressed(svc.engine, "stuffed@example.net", "busy@example.net") == {
        "stuffed@example.net": "bounced"
    }
    with Session(svc.engine) as session:
        row = storage.suppressions_for(session, ["stuffed@example.net"])["stuffed@example.net"]
    assert "2 soft bounces in a row" in row.detail


def test_a_forged_verp_mac_suppresses_nobody(
    svc: services.Services, imap: ImapServer, clock: Clock
) -> None:
    reader(svc.engine, svc.settings, "ayu@example.net")
    sent = issue(svc, "tariffs", clock)
    genuine = verp_of(svc.settings, sent["ayu@example.net"])
    forged = genuine[: genuine.rindex("-") + 1] + "abcdefabcd@localhost"
    imap.deliver(dsn(forged, "ayu@example.net"))
    polled = svc.bounces.poll()
    assert (polled.forged, polled.recorded) == (1, 0)
    assert suppressed(svc.engine, "ayu@example.net") == {}
    assert bounces(svc.engine) == [] and imap.inbox() == []


def test_polling_twice_records_once(svc: services.Services, imap: ImapServer, clock: Clock) -> None:
    reader(svc.engine, svc.settings, "gone@example.net")
    sent = issue(svc, "tariffs", clock)
    raw = dsn(verp_of(svc.settings, sent["gone@example.net"]), "gone@example.net")
    imap.deliver(raw)
    assert svc.bounces.poll().recorded == 1
    imap.deliver(raw)  # the same report again (a relay sent it twice; a crash before delete)
    again = svc.bounces.poll()
    assert (again.recorded, again.duplicates) == (0, 1)
    assert len(bounces(svc.engine)) == 1


def test_mail_that_is_no_report_is_deleted_and_changes_nothing(
    svc: services.Services, imap: ImapServer, clock: Clock
) -> None:
    reader(svc.engine, svc.settings, "reader@example.net")
    sent = issue(svc, "tariffs", clock)
    to = verp_of(svc.settings, sent["reader@example.net"])
    for raw in (
        auto_reply(),
        read_receipt(),
        dsn(to, "reader@example.net", action="delivered", status="2.0.0"),
        *HOSTILE,
    ):
        imap.deliver(raw)
    polled = svc.bounces.poll()
    assert (polled.messages, polled.not_reports, polled.recorded) == (10, 10, 0)
    assert imap.inbox() == []
    assert bounces(svc.engine) == [] and suppressed(svc.engine, "reader@example.net") == {}


def test_without_a_verp_address_only_the_quoted_message_id_decides(
    svc: services.Services, imap: ImapServer, clock: Clock
) -> None:
    for email in ("by-id@example.net", "by-address@example.net"):
        reader(svc.engine, svc.settings, email)
    sent = issue(svc, "tariffs", clock)
    row = sent["by-id@example.net"]
    # bounces of mail sent before VERP was on come to the plain address
    by_id = original_message("by-id@example.net", "bounces@localhost", row.message_id)
    imap.deliver(dsn("bounces@localhost", "old-alias@example.net", original=by_id))
    imap.deliver(dsn("bounces@localhost", "by-address@example.net"))
    imap.deliver(dsn("bounces@localhost", "stranger@example.net"))
    polled = svc.bounces.poll()
    # the Message-ID is signed (an HMAC of run and subscriber); an address alone is what
    # anyone mailing the bounce address could write, so with VERP on it suppresses nobody
    assert (polled.recorded, polled.unmatched) == (1, 2)
    assert suppressed(svc.engine, *sent, "stranger@example.net") == {
        "by-id@example.net": "bounced",
    }
    assert [(b.email, b.delivery_id) for b in bounces(svc.engine)] == [
        ("by-id@example.net", row.id),
    ]


def test_pop3_mailbox_and_a_message_poplib_cannot_read(
    settings: Settings,
    engine: sa.Engine,
    smtp_sink: tuple[SmtpSink, int],
    clock: Clock,
) -> None:
    with Pop3Server(USER, PASSWORD) as pop3:
        cfg = with_bounces(settings, mailbox=mailbox_url("pop3", pop3.port).removesuffix("/INBOX"))
        svc = wired(cfg, engine, smtp_sink[1], clock)
        reader(engine, cfg, "gone@example.net")
        sent = issue(svc, "tariffs", clock)
        pop3.deliver(dsn(verp_of(cfg, sent["gone@example.net"]), "gone@example.net"))
        pop3.deliver(b"Subject: x\r\n\r\n" + b"y" * 5000 + b"\r\n")  # poplib's line limit
        pop3.deliver(auto_reply())
        first = svc.bounces.poll()
        assert (first.source, first.messages, first.recorded) == ("pop3", 2, 1)
        assert suppressed(engine, "gone@example.net") == {"gone@example.net": "bounced"}
        assert pop3.messages == [auto_reply()]  # the rest waits for the next poll
        second = svc.bounces.poll()
        assert (second.messages, second.not_reports) == (1, 1)
        assert pop3.messages == []


def test_poll_and_list_from_the_command_line(
    svc: services.Services, imap: ImapServer, clock: Clock, tmp_path: Path, database_url: str
) -> None:
    reader(svc.engine, svc.settings, "gone@example.net")
    sent = issue(svc, "tariffs", clock)
    raw = dsn(verp_of(svc.settings, sent["gone@example.net"]), "gone@example.net")
    imap.deliver(raw)
    imap.deliver(auto_reply())
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {
        "NEWSLETTER_DATABASE__URL": database_url,
        "NEWSLETTER_BOUNCES__MAILBOX": svc.settings.bounces.mailbox,
    }

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["--config", str(config), "bounces", *args], env=env)
        return result.exit_code, result.output

    assert run("poll") == (
        0,
        "imap: 2 messages read and deleted, 1 without a report; reports: 1 recorded\n"
        "suppressed gone@example.net (bounced)\n",
    )
    imap.deliver(raw)
    assert run("poll")[1].startswith(
        "imap: 1 message read and deleted; reports: 0 recorded, 1 already"
    )
    code, listed = run("list")
    assert code == 0 and "hard" in listed and "5.1.1" in listed and "gone@example.net" in listed
    assert f"delivery {sent['gone@example.net'].id}" in listed
    assert run("list", "--email", "nobody@example.net") == (0, "no bounces\n")


def test_a_wrong_password_or_a_dead_server_is_named_without_the_password(
    settings: Settings, engine: sa.Engine, imap: ImapServer, tmp_path: Path, database_url: str
) -> None:
    wrong = Bounces(engine, with_bounces(settings, mailbox=mailbox_url("imap", imap.port, "nope")))
    with pytest.raises(ConfigError) as refused:
        wrong.poll()
    message = str(refused.value)
    assert (
        "login refused" in message
        and f"imap://bounce%40example.org:***@127.0.0.1:{imap.port}" in message
    )
    assert "nope" not in message
    imap.deliver(auto_reply())
    missing = mailbox_url("imap", imap.port).replace("/INBOX", "/Archive")
    with pytest.raises(ConfigError, match="cannot open folder 'Archive'"):
        Bounces(engine, with_bounces(settings, mailbox=missing)).poll()
    assert len(imap.inbox()) == 1
    dead = mailbox_url("imaps", free_port())  # nothing listens there
    with pytest.raises(MailboxError, match=r"cannot reach 127\.0\.0\.1") as down:
        Bounces(engine, with_bounces(settings, mailbox=dead)).poll()
    assert PASSWORD not in str(down.value) and quote(PASSWORD, safe="") not in str(down.value)
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {"NEWSLETTER_DATABASE__URL": database_url, "NEWSLETTER_BOUNCES__MAILBOX": dead}
    result = CliRunner().invoke(main, ["--config", str(config), "bounces", "poll"], env=env)
    assert result.exit_code == 1 and "cannot reach" in result.output
    env["NEWSLETTER_BOUNCES__MAILBOX"] = ""
    result = CliRunner().invoke(main, ["--config", str(config), "bounces", "poll"], env=env)
    assert result.exit_code == 2 and "[bounces] mailbox is empty" in result.output


def test_the_scheduler_polls_the_mailbox_and_survives_its_failures(
    settings: Settings, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = with_bounces(settings, mailbox=mailbox_url("imap", free_port()), poll_seconds=60)
    built = services.build(cfg, engine)

    async def run() -> None:
        scheduler = DigestScheduler(built.digests, 3600, built.digests.clock, built.bounces)
        await scheduler.start()
        try:
            job = scheduler.scheduler.get_job(BOUNCES_JOB)
            assert job is not None and job.trigger.interval == timedelta(seconds=60)
            await scheduler.poll_bounces()  # nothing listens: logged, not raised
        finally:
            await scheduler.stop()

    with caplog.at_level(logging.WARNING, logger="newsletter.scheduler"):
        asyncio.run(run())
    assert "the bounce mailbox was not read" in caplog.text
    assert PASSWORD not in caplog.text


# ----------------------------------------------------------------------------- webhooks


@dataclasses.dataclass
class Providers:
    """The app with every webhook configured, and the keys to sign with."""

    client: TestClient
    svc: services.Services
    sns_key: rsa.RSAPrivateKey
    sendgrid_key: ec.EllipticCurvePrivateKey
    fetched: list[str]
    sent: dict[str, Delivery]


CERT_URL = "https://sns.ap-southeast-1.amazonaws.com/SimpleNotificationService-test.pem"
TOPIC = "arn:aws:sns:ap-southeast-1:123456789012:ses-bounces"
MAILGUN_KEY = "mailgun-signing-key"
POSTMARK_PASSWORD = "postmark password"


def certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def sns_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def providers(
    settings: Settings,
    engine: sa.Engine,
    smtp_sink: tuple[SmtpSink, int],
    clock: Clock,
    sns_key: rsa.RSAPrivateKey,
) -> Iterator[Providers]:
    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cfg = with_bounces(
        settings,
        ses_topic_arn=TOPIC,
        mailgun_signing_key=MAILGUN_KEY,
        postmark_password=POSTMARK_PASSWORD,
        sendgrid_public_key=base64.b64encode(public).decode(),
    )
    svc = wired(cfg, engine, smtp_sink[1], clock)
    for email in ("gone@example.net", "angry@example.net", "slow@example.net"):
        reader(engine, cfg, email)
    sent = issue(svc, "tariffs", clock)
    fetched: list[str] = []
    pem = certificate(sns_key)

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return pem if url == CERT_URL else b"<ConfirmSubscriptionResponse/>"

    with TestClient(create_app(cfg, engine), base_url=cfg.base_url) as client:
        client.app.app.state.services.bounces.webhooks.fetch = fetch  # type: ignore[attr-defined]
        yield Providers(client, svc, sns_key, sendgrid_key, fetched, sent)


def sns(
    p: Providers, message: dict[str, Any] | None, version: str = "1", **fields: str
) -> dict[str, str]:
    """An SNS request body signed the way SNS signs it."""
    note = {
        "Type": "Notification",
        "MessageId": "2a1f8b6e-0000-4000-8000-000000000001",
        "TopicArn": TOPIC,
        "Message": json.dumps(message),
        "Timestamp": "2026-11-20T12:00:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        **fields,
    }
    if note["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    signed = "".join(f"{n}\n{note[n]}\n" for n in names if n in note)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = p.sns_key.sign(signed.encode(), padding.PKCS1v15(), algorithm)
    note["Signature"] = base64.b64encode(signature).decode()
    return note


def ses_bounce(p: Providers, email: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": email,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2026-11-20T12:00:00.000Z",
            "feedbackId": f"feedback-{email}-{bounce_type}",
        },
        "mail": {
            "source": verp_of(p.svc.settings, p.sent[email]),
            "destination": [email],
            "commonHeaders": {"messageId": p.sent[email].message_id},
        },
    }


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounces_and_complaints_through_signed_sns(providers: Providers, version: str) -> None:
    p = providers
    answer = p.client.post("/webhooks/ses", json=sns(p, ses_bounce(p, "gone@example.net"), version))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recorded": 1, "duplicates": 0, "unmatched": 0}
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "angry@example.net"}],
            "complaintFeedbackType": "abuse",
            "feedbackId": "complaint-1",
        },
        "mail": {"source": verp_of(p.svc.settings, p.sent["angry@example.net"])},
    }
    note = sns(p, complaint, version, Subject="Amazon SES Email Event Notification")
    assert p.client.post("/webhooks/ses", json=note).status_code == 200
    transient = ses_bounce(p, "slow@example.net", "Transient")
    assert p.client.post("/webhooks/ses", json=sns(p, transient, version)).status_code == 200
    assert suppressed(p.svc.engine, *p.sent) == {
        "gone@example.net": "bounced",
        "angry@example.net": "complained",
    }
    assert [(b.email, b.kind, b.source) for b in bounces(p.svc.engine)] == [
        ("gone@example.net", "hard", "ses"),
        ("angry@example.net", "complaint", "ses"),
        ("slow@example.net", "soft", "ses"),
    ]
    assert p.fetched == [CERT_URL]  # fetched once, then kept


def test_ses_refuses_what_sns_did_not_sign(providers: Providers) -> None:
    p = providers
    good = sns(p, ses_bounce(p, "gone@example.net"))
    tampered = {**good, "Message": good["Message"].replace("gone@", "angry@")}
    assert p.client.post("/webhooks/ses", json=tampered).status_code == 403
    other_topic = sns(p, ses_bounce(p, "gone@example.net"), TopicArn=TOPIC + "-other")
    assert p.client.post("/webhooks/ses", json=other_topic).status_code == 403
    evil = sns(
        p, ses_bounce(p, "gone@example.net"), SigningCertURL="https://sns.evil.example/c.pem"
    )
    assert p.client.post("/webhooks/ses", json=evil).status_code == 403
    plain = sns(
        p, ses_bounce(p, "gone@example.net"), SigningCertURL=CERT_URL.replace("https", "http")
    )
    assert p.client.post("/webhooks/ses", json=plain).status_code == 403
    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    assert p.client.post("/webhooks/ses", json=unsigned).status_code == 401
    bad = p.client.post("/webhooks/ses", content=b"{not json")
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    assert p.client.post("/webhooks/ses", json=[1, 2]).status_code == 400
    assert set(p.fetched) <= {CERT_URL}  # never the other hosts
    assert bounces(p.svc.engine) == [] and suppressed(p.svc.engine, *p.sent) == {}


def test_ses_subscription_is_confirmed_only_on_the_sns_host(providers: Providers) -> None:
    p = providers
    url = "https://sns.ap-southeast-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    fields = {"Type": "SubscriptionConfirmation", "SubscribeURL": url, "Token": "abc"}
    answer = p.client.post("/webhooks/ses", json=sns(p, None, **fields))
    assert answer.status_code == 200, answer.text
    assert p.fetched == [CERT_URL, url]
    fields["SubscribeURL"] = "https://attacker.example/confirm"
    assert p.client.post("/webhooks/ses", json=sns(p, None, **fields)).status_code == 403
    assert p.fetched == [CERT_URL, url]


def mailgun(event: dict[str, Any], key: str = MAILGUN_KEY, age: int = 0) -> dict[str, Any]:
    timestamp = str(int(time.time()) - age)
    token = base64.b16encode(random.randbytes(25)).decode().lower()
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    }


def test_mailgun_signed_events(providers: Providers) -> None:
    p = providers
    failed = {
        "id": "mg-event-1",
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "recipient": "gone@example.net",
        "envelope": {"sender": verp_of(p.svc.settings, p.sent["gone@example.net"])},
        "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"},
        "message": {"headers": {"message-id": "whatever@localhost"}},
    }
    temporary = {
        **failed,
        "id": "mg-event-2",
        "severity": "temporary",
        "recipient": "slow@example.net",
        "envelope": {"sender": verp_of(p.svc.settings, p.sent["slow@example.net"])},
    }
    complained = {"id": "mg-event-3", "event": "complained", "recipient": "angry@example.net"}
    opened = {"id": "mg-event-4", "event": "opened", "recipient": "gone@example.net"}
    for event in (failed, temporary, complained, opened):
        answer = p.client.post("/webhooks/mailgun", json=mailgun(event))
        assert answer.status_code == 200, answer.text
    assert suppressed(p.svc.engine, *p.sent) == {
        "gone@example.net": "bounced",
        "angry@example.net": "complained",
    }
    kinds = [(b.email, b.kind, b.status, b.delivery_id) for b in bounces(p.svc.engine)]
    assert kinds == [
        ("gone@example.net", "hard", "5.1.1", p.sent["gone@example.net"].id),
        ("slow@example.net", "soft", "5.1.1", p.sent["slow@example.net"].id),
        ("angry@example.net", "complaint", "", None),
    ]
    retried = p.client.post("/webhooks/mailgun", json=mailgun(failed))
    assert retried.json() == {"recorded": 0, "duplicates": 1, "unmatched": 0}


def test_mailgun_refuses_wrong_old_and_missing_signatures(providers: Providers) -> None:
    p = providers
    event = {"id": "x", "event": "complained", "recipient": "angry@example.net"}
    assert p.client.post("/webhooks/mailgun", json=mailgun(event, "other key")).status_code == 403
    assert p.client.post("/webhooks/mailgun", json=mailgun(event, age=600)).status_code == 403
    assert p.client.post("/webhooks/mailgun", json={"event-data": event}).status_code == 401
    body = mailgun(event)
    assert p.client.post("/webhooks/mailgun", json=body).status_code == 200
    # Mailgun signs a token, not the body: a captured request must not work twice
    body["event-data"] = {**event, "id": "y", "recipient": "gone@example.net"}
    assert p.client.post("/webhooks/mailgun", json=body).status_code == 403
    assert suppressed(p.svc.engine, *p.sent) == {"angry@example.net": "complained"}


def postmark_auth(password: str = POSTMARK_PASSWORD, user: str = "postmark") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_postmark_bounces_and_complaints_behind_basic_auth(providers: Providers) -> None:
    p = providers
    hard = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Email": "gone@example.net",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "BouncedAt": "2026-11-20T12:00:00Z",
    }
    spam = {
        "RecordType": "SpamComplaint",
        "ID": 17,
        "Type": "SpamComplaint",
        "Email": "Angry@Example.net",
    }
    soft = {**hard, "ID": 18, "Type": "SoftBounce", "Email": "slow@example.net"}
    auto = {**hard, "ID": 19, "Type": "AutoResponder", "Email": "slow@example.net"}
    for body in (hard, spam, soft, auto):
        answer = p.client.post("/webhooks/postmark", json=body, headers=postmark_auth())
        assert answer.status_code == 200, answer.text
    assert suppressed(p.svc.engine, *p.sent) == {
        "gone@example.net": "bounced",
        "angry@example.net": "complained",
    }
    assert [(b.kind, b.status) for b in bounces(p.svc.engine)] == [
        ("hard", "5.1.1"),
        ("complaint", ""),
        ("soft", "5.1.1"),
    ]
    wrong = p.client.post("/webhooks/postmark", json=hard, headers=postmark_auth("guess"))
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert (
        p.client.post("/webhooks/postmark", json=hard, headers=postmark_auth(user="x")).status_code
        == 401
    )
    assert p.client.post("/webhooks/postmark", json=hard).status_code == 401
    assert (
        p.client.post(
            "/webhooks/postmark",
            json={"RecordType": "Bounce", "Type": "HardBounce"},
            headers=postmark_auth(),
        ).status_code
        == 400
    )  # no ID


def sendgrid(
    p: Providers, events: object, key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(events).encode()
    timestamp = str(int(time.time()))
    signature = (key or p.sendgrid_key).sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def test_sendgrid_signed_event_batches(providers: Providers) -> None:
    p = providers
    events = [
        {
            "email": "gone@example.net",
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 unknown user",
            "sg_event_id": "sg-1",
            "smtp-id": p.sent["gone@example.net"].message_id,
        },
        {
            "email": "slow@example.net",
            "event": "bounce",
            "type": "blocked",
            "status": "5.7.1",
            "reason": "blocked",
            "sg_event_id": "sg-2",
        },
        {"email": "angry@example.net", "event": "spamreport", "sg_event_id": "sg-3"},
        {"email": "gone@example.net", "event": "delivered", "sg_event_id": "sg-4"},
        "not an event",
    ]
    body, headers = sendgrid(p, events)
    answer = p.client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["recorded"] == 3
    assert suppressed(p.svc.engine, *p.sent) == {
        "gone@example.net": "bounced",
        "angry@example.net": "complained",
    }
    [gone, later, _] = bounces(p.svc.engine)
    assert gone.delivery_id == p.sent["gone@example.net"].id  # matched by the Message-ID
    assert (later.kind, later.delivery_id) == ("soft", None)

    other = ec.generate_private_key(ec.SECP256R1())
    body, headers = sendgrid(p, events[:1], other)
    assert p.client.post("/webhooks/sendgrid", content=body, headers=headers).status_code == 403
    body, headers = sendgrid(p, events[:1])
    altered = body.replace(b"gone@", b"xgone@")
    assert p.client.post("/webhooks/sendgrid", content=altered, headers=headers).status_code == 403
    assert p.client.post("/webhooks/sendgrid", content=body).status_code == 401
    body, headers = sendgrid(p, {"event": "bounce"})
    assert p.client.post("/webhooks/sendgrid", content=body, headers=headers).status_code == 400


def test_an_unconfigured_webhook_is_not_found(client: TestClient) -> None:
    for provider in ("ses", "mailgun", "postmark", "sendgrid", "sparkpost"):
        answer = client.post(f"/webhooks/{provider}", json={})
        assert answer.status_code == 404, provider


def test_a_sendgrid_key_that_is_no_public_key_stops_the_start(
    settings: Settings, engine: sa.Engine
) -> None:
    cfg = with_bounces(settings, sendgrid_public_key=base64.b64encode(b"not a key").decode())
    with pytest.raises(ConfigError, match="sendgrid_public_key"):
        create_app(cfg, engine)


def test_hostile_webhook_bodies_are_refused_or_ignored_never_a_failure(
    providers: Providers,
) -> None:
    p = providers
    odd: list[object] = [None, 5, "x", [], {}, [{}], {"a": [1]}, "\u2028", 10**30]
    ses_messages = [
        {"notificationType": "Bounce", "bounce": value, "mail": value} for value in odd
    ] + [
        {
            "notificationType": "Bounce",
            "bounce": {"bounceType": "Permanent", "bouncedRecipients": odd},
        },
        {"notificationType": "Complaint", "complaint": {"complainedRecipients": [odd]}},
    ]
    for message in ses_messages:
        answer = p.client.post("/webhooks/ses", json=sns(p, message))
        assert answer.status_code == 200, (message, answer.text)
    for value in odd:
        event = {
            "event": "failed",
            "severity": "permanent",
            "recipient": value,
            "delivery-status": value,
            "envelope": value,
            "message": value,
            "id": value,
        }
        answer = p.client.post("/webhooks/mailgun", json=mailgun(event))
        assert answer.status_code == 200, (value, answer.text)
        forged = mailgun(event)
        forged["signature"]["signature"] = "\u00e9" * 64
        forged["signature"]["timestamp"] = "9" * 400
        assert p.client.post("/webhooks/mailgun", json=forged).status_code == 403
        bounce = {
            "RecordType": "Bounce",
            "Type": "HardBounce",
            "ID": 1,
            "Email": value,
            "Details": value,
        }
        answer = p.client.post("/webhooks/postmark", json=bounce, headers=postmark_auth())
        assert answer.status_code == 200, (value, answer.text)
        body, headers = sendgrid(
            p,
            [
                {
                    "event": "bounce",
                    "email": value,
                    "status": value,
                    "sg_event_id": value,
                    "smtp-id": value,
                }
            ],
        )
        answer = p.client.post("/webhooks/sendgrid", content=body, headers=headers)
        assert answer.status_code == 200, (value, answer.text)
    for raw in (b"", b"\xff\xfe", b"[" * 100_000, b'{"a": '):
        for provider in ("ses", "mailgun", "postmark"):
            headers = postmark_auth() if provider == "postmark" else {}
            answer = p.client.post(f"/webhooks/{provider}", content=raw, headers=headers)
            assert answer.status_code in (400, 401), (provider, raw[:10], answer.status_code)
    assert suppressed(p.svc.engine, *p.sent) == {}
