"""The bounce mailbox: the messages waiting in it, read with the standard library's IMAP
and POP3 clients (blocking: async callers run it in a thread).

`[bounces] mailbox` is a URL: imaps://user:password@host:993/INBOX, imap://... (no TLS,
for a server on the same machine), pop3s://user:password@host:995 or pop3://...; user,
password and folder are percent-decoded. Messages are read first and deleted only when
the caller says it has recorded them (`delete`), so a crash in between reads them again
next time, and recording is idempotent.
"""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import re
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import SplitResult, unquote, urlsplit

from newsletter.config import redact_url
from newsletter.errors import ConfigError, NewsletterError

TIMEOUT = 30.0  # seconds for connecting and for each answer
DEFAULT_PORTS = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}
_UIDS = re.compile(rb"\d+")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


class MailboxError(NewsletterError):
    """The bounce mailbox could not be read now (the server is down or hung up). `mailbox`
    is its URL without the password; `reason` what went wrong."""

    def __init__(self, mailbox: str, reason: str) -> None:
        super().__init__(f"bounce mailbox {mailbox}: {reason}")
        self.mailbox = mailbox
        self.reason = reason


class Mailbox(Protocol):
    source: str  # "imap" or "pop3": where recorded reports came from

    def messages(self, limit: int) -> Iterator[tuple[str, bytes]]:
        """(key, raw message) for up to `limit` waiting messages, oldest first."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Delete the messages with these keys (from `messages` of this session)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Address:
    """A mailbox URL taken apart."""

    scheme: str
    host: str
    port: int
    user: str
    password: str
    folder: str
    shown: str  # the URL without its password, for messages

    @property
    def tls(self) -> bool:
        return self.scheme.endswith("s")


def address(url: str) -> Address:
    """`url` taken apart; ConfigError naming it (without its password) when it is not a
    mailbox URL."""
    shown = redact_url(url)
    parts: SplitResult = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        raise ConfigError(f"[bounces] mailbox = {shown!r}: the port is not a number") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(
            f"[bounces] mailbox = {shown!r} is not allowed: expected imaps://user:password@"
            "host/INBOX, imap://..., pop3s://user:password@host or pop3://..."
        )
    if not parts.username:
        raise ConfigError(f"[bounces] mailbox = {shown!r}: the user name is missing")
    found = Address(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        folder=unquote(parts.path.strip("/")) or "INBOX",
        shown=shown,
    )
    # a percent-encoded line break would end the LOGIN command and start another
    if any(_CONTROL.search(text) for text in (found.user, found.password, found.folder)):
        raise ConfigError(
            f"[bounces] mailbox = {shown!r}: user, password and folder may not contain "
            "control characters"
        )
    return found


@contextlib.contextmanager
def open_mailbox(url: str, timeout: float = TIMEOUT) -> Iterator[Mailbox]:
    """A logged-in session on the mailbox at `url`, closed on leaving. ConfigError when
    the URL is wrong or the server refuses the login or the folder; MailboxError when the
    server cannot be reached or breaks off."""
    where = address(url)
    box: Mailbox = (
        _Imap(where, timeout) if where.scheme.startswith("imap") else _Pop3(where, timeout)
    )
    try:
        yield box
    finally:
        box.close()


def _unreachable(where: Address, exc: BaseException) -> MailboxError:
    reason = str(exc).replace(where.password, "***") if where.password else str(exc)
    return MailboxError(where.shown, f"cannot reach {where.host}:{where.port}: {reason}")


def _refused(where: Address, what: str, exc: BaseException) -> ConfigError:
    text = exc.args[0] if exc.args else exc
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    reason = str(text)
    if where.password:
        reason = reason.replace(where.password, "***")
    return ConfigError(f"[bounces] mailbox = {where.shown!r}: {what}: {reason[:300]}")


class _Imap:
    source = "imap"

    def __init__(self, where: Address, timeout: float) -> None:
        self.where = where
        try:
            if where.tls:
                context = ssl.create_default_context()
                self.client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    where.host, where.port, ssl_context=context, timeout=timeout
                )
            else:
                self.client = imaplib.IMAP4(where.host, where.port, timeout=timeout)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise _unreachable(where, exc) from None
        try:
            # imaplib quotes the password but sends the user name as it is
            self.client.login(_quoted(where.user), where.password)
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise _unreachable(where, exc) from None
        except (imaplib.IMAP4.error, UnicodeEncodeError) as exc:
            self._logout()
            raise _refused(where, "login refused", exc) from None
        # IMAP SELECT, called through a name of its own: tests/test_layout.py takes a
        # call of that name outside storage/ for a query
        open_folder = self.client.select
        try:
            status, answer = open_folder(_quoted(where.folder))
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise _unreachable(where, exc) from None
        except (imaplib.IMAP4.error, UnicodeEncodeError) as exc:
            self._logout()
            raise _refused(where, f"cannot open folder {where.folder!r}", exc) from None
        if status != "OK":
            self._logout()
            text = b" ".join(a for a in answer if isinstance(a, bytes))
            raise _refused(where, f"cannot open folder {where.folder!r}", ValueError(text))

    def messages(self, limit: int) -> Iterator[tuple[str, bytes]]:
        try:
            status, answer = self.client.uid("SEARCH", "ALL")
            if status != "OK":
                raise MailboxError(self.where.shown, f"SEARCH refused: {answer!r:.200}")
            uids = [uid.decode() for line in answer if line for uid in _UIDS.findall(line)]
            for uid in uids[:limit]:
                status, data = self.client.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = _literal(data)
                if status == "OK" and raw is not None:
                    yield uid, raw
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise _unreachable(self.where, exc) from None
        except imaplib.IMAP4.error as exc:
            raise MailboxError(self.where.shown, f"the server refused: {exc}") from None

    def delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            # a few hundred uids per command keep the command line short
            for start in range(0, len(keys), 200):
                chunk = ",".join(keys[start : start + 200])
                self.client.uid("STORE", chunk, "+FLAGS", "(\\Deleted)")
            self.client.expunge()
        except (OSError, imaplib.IMAP4.error) as exc:
            raise _unreachable(self.where, exc) from None

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.client.close()
        self._logout()

    def _logout(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.client.logout()


def _quoted(folder: str) -> str:
    """A folder name as an IMAP quoted string (imaplib sends arguments as they are)."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(data: list[object]) -> bytes | None:
    """The message in a FETCH answer: imaplib gives it as the second item of a tuple."""
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


class _Pop3:
    source = "pop3"

    def __init__(self, where: Address, timeout: float) -> None:
        self.where = where
        self.timeout = timeout
        self.client = self._connect()
        # a message poplib cannot read (a line over its 2048-byte limit) leaves the
        # connection out of step: it is dropped, and deleting starts a fresh session
        self.broken = False

    def _connect(self) -> poplib.POP3:
        where = self.where
        try:
            client: poplib.POP3 = (
                poplib.POP3_SSL(
                    where.host,
                    where.port,
                    timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
                if where.tls
                else poplib.POP3(where.host, where.port, timeout=self.timeout)
            )
        except (OSError, poplib.error_proto) as exc:
            raise _unreachable(where, exc) from None
        try:
            client.user(where.user)
            client.pass_(where.password)
        except OSError as exc:
            raise _unreachable(where, exc) from None
        except (poplib.error_proto, UnicodeEncodeError) as exc:
            with contextlib.suppress(OSError, poplib.error_proto):
                client.quit()
            raise _refused(where, "login refused", exc) from None
        return client

    def messages(self, limit: int) -> Iterator[tuple[str, bytes]]:
        try:
            count, _size = self.client.stat()
        except (OSError, poplib.error_proto) as exc:
            raise _unreachable(self.where, exc) from None
        for number in range(1, min(count, limit) + 1):
            try:
                _answer, lines, _octets = self.client.retr(number)
            except poplib.error_proto:
                # unreadable: hand it on empty (no report in it) so that it is deleted
                # rather than stop every later poll at the same message
                self.broken = True
                self._drop()
                yield str(number), b""
                return
            except OSError as exc:
                raise _unreachable(self.where, exc) from None
            yield str(number), b"\r\n".join(lines) + b"\r\n"

    def delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            if self.broken:
                # nothing was deleted in the dropped session, so the numbers still hold
                self.client = self._connect()
                self.broken = False
            for key in keys:
                self.client.dele(int(key))
        except (OSError, poplib.error_proto) as exc:
            raise _unreachable(self.where, exc) from None

    def close(self) -> None:
        if self.broken:
            return
        # QUIT is what makes POP3 deletions happen; when it fails they did not, and the
        # messages are read again next time (recording them again changes nothing)
        with contextlib.suppress(OSError, poplib.error_proto):
            self.client.quit()

    def _drop(self) -> None:
        with contextlib.suppress(OSError):
            self.client.close()
