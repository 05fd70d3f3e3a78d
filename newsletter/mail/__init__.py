"""Mail: letters rendered from templates, composed into signed MIME messages (mime.py,
dkim.py), and handed to a transport (transports.py: SMTP pool, outbox folder, memory)."""

from newsletter.mail import verp
from newsletter.mail.letters import Letter, render_bodies
from newsletter.mail.mime import Composer, Envelope
from newsletter.mail.relays import RelayMailer
from newsletter.mail.transports import Mailer, MemoryMailer, OutboxMailer, SmtpMailer, make_mailer

__all__ = [
    "Composer",
    "Envelope",
    "Letter",
    "Mailer",
    "MemoryMailer",
    "OutboxMailer",
    "RelayMailer",
    "SmtpMailer",
    "make_mailer",
    "render_bodies",
    "verp",
]
