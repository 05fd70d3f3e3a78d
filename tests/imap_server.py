"""A small IMAP4rev1 server on loopback for tests: one user, folders of messages kept in
memory, and the commands imaplib needs to read and delete mail (CAPABILITY, NOOP, LOGIN,
SELECT/EXAMINE, SEARCH ALL, FETCH of RFC822 / BODY[] / BODY.PEEK[] / RFC822.SIZE / FLAGS
/ UID, STORE +FLAGS/-FLAGS/FLAGS, EXPUNGE, CLOSE, LOGOUT, and their UID forms)."""

from __future__ import annotations

import re
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType

_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|\(([^)]*)\)|(\S+)')
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")


@dataclass
class Stored:
    uid: int
    data: bytes
    flags: set[str] = field(default_factory=set)


class ImapServer:
    """Start with `with ImapServer(user, password) as server:`; `server.port` is where it
    listens. `deliver(raw)` puts a message into INBOX; `folders` holds what is there."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.folders: dict[str, list[Stored]] = {"INBOX": []}
        self.next_uid = 1
        self.lock = threading.Lock()
        self.logins: list[tuple[str, bool]] = []  # (user, accepted)
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                _Session(outer, self).run()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def deliver(self, raw: bytes, folder: str = "INBOX") -> int:
        with self.lock:
            uid = self.next_uid
            self.next_uid += 1
            self.folders.setdefault(folder, []).append(Stored(uid, raw))
            return uid

    def inbox(self) -> list[bytes]:
        with self.lock:
            return [m.data for m in self.folders["INBOX"]]

    def __enter__(self) -> ImapServer:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Session:
    def __init__(self, server: ImapServer, handler: socketserver.StreamRequestHandler) -> None:
        self.server = server
        self.rfile = handler.rfile
        self.wfile = handler.wfile
        self.authenticated = False
        self.folder: str | None = None

    def send(self, line: bytes) -> None:
        self.wfile.write(line + b"\r\n")

    def run(self) -> None:
        self.send(b"* OK [CAPABILITY IMAP4rev1] test server ready")
        while True:
            line = self.read_command()
            if line is None:
                return
            tag, _, rest = line.partition(b" ")
            name, _, args = rest.partition(b" ")
            command = name.upper().decode("ascii", "replace")
            if command == "UID":
                name, _, args = args.partition(b" ")
                command = "UID " + name.upper().decode("ascii", "replace")
            try:
                done = self.dispatch(tag, command, args)
            except (ValueError, IndexError, KeyError) as exc:
                self.send(tag + b" BAD " + str(exc).encode())
                continue
            if done:
                return

    def read_command(self) -> bytes | None:
        """A command line with its literals ({n} then n bytes) spliced in as quoted text."""
        line = self.rfile.readline()
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        while (literal := _LITERAL.search(line)) is not None:
            self.send(b"+ go ahead")
            data = self.rfile.read(int(literal.group(1)))
            quoted = b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
            line = line[: literal.start()] + quoted + self.rfile.readline().rstrip(b"\r\n")
        return line

    def dispatch(self, tag: bytes, command: str, args: bytes) -> bool:
        if command == "CAPABILITY":
            self.send(b"* CAPABILITY IMAP4rev1 UIDPLUS")
        elif command == "NOOP":
            pass
        elif command == "LOGOUT":
            self.send(b"* BYE see you")
            self.send(tag + b" OK LOGOUT completed")
            return True
        elif command == "LOGIN":
            user, password = _words(args)
            accepted = user == self.server.user and password == self.server.password
            self.server.logins.append((user, accepted))
            if not accepted:
                self.send(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials")
                return False
            self.authenticated = True
        elif not self.authenticated:
            self.send(tag + b" BAD log in first")
            return False
        elif command in ("SELECT", "EXAMINE"):
            [folder] = _words(args)
            with self.server.lock:
                messages = self.server.folders.get(folder)
                if messages is None:
                    self.send(tag + b" NO [NONEXISTENT] no such folder")
                    return False
                self.folder = folder
                self.send(b"* %d EXISTS" % len(messages))
                self.send(b"* 0 RECENT")
                self.send(b"* FLAGS (\\Deleted \\Seen)")
                self.send(b"* OK [UIDVALIDITY 1] UIDs valid")
                self.send(b"* OK [UIDNEXT %d] next" % self.server.next_uid)
            self.send(tag + b" OK [READ-WRITE] " + command.encode() + b" completed")
            return False
        elif self.folder is None:
            self.send(tag + b" BAD select a folder first")
            return False
        else:
            with self.server.lock:
                self.selected(tag, command, args)
            return False
        self.send(tag + b" OK " + command.encode() + b" completed")
        return False

    def selected(self, tag: bytes, command: str, args: bytes) -> None:
        assert self.folder is not None
        messages = self.server.folders[self.folder]
        by_uid = command.startswith("UID ")
        name = command.removeprefix("UID ")
        if name == "SEARCH":
            if args.upper().strip() != b"ALL":
                self.send(tag + b" BAD only SEARCH ALL")
                return
            found = [m.uid if by_uid else n for n, m in enumerate(messages, 1)]
            self.send(b"* SEARCH" + b"".join(b" %d" % k for k in found))
        elif name == "FETCH":
            which, _, items = args.partition(b" ")
            for number, message in self.matching(messages, which, by_uid):
                self.fetch(number, message, items.upper(), by_uid)
        elif name == "STORE":
            which, _, rest = args.partition(b" ")
            action, _, flags = rest.partition(b" ")
            wanted = {f.decode() for f in flags.strip(b"()").split()}
            for number, message in self.matching(messages, which, by_uid):
                if action.upper().startswith(b"+FLAGS"):
                    message.flags |= wanted
                elif action.upper().startswith(b"-FLAGS"):
                    message.flags -= wanted
                else:
                    message.flags = set(wanted)
                if not action.upper().endswith(b".SILENT"):
                    shown = " ".join(sorted(message.flags)).encode()
                    uid = b"UID %d " % message.uid if by_uid else b""
                    self.send(b"* %d FETCH (%sFLAGS (%s))" % (number, uid, shown))
        elif name in ("EXPUNGE", "CLOSE"):
            # numbers after a removed message move down: report from the end backwards
            for number in range(len(messages), 0, -1):
                if "\\Deleted" in messages[number - 1].flags:
                    del messages[number - 1]
                    if name == "EXPUNGE":
                        self.send(b"* %d EXPUNGE" % number)
            if name == "CLOSE":
                self.folder = None
        else:
            self.send(tag + b" BAD unknown command " + command.encode())
            return
        self.send(tag + b" OK " + command.encode() + b" completed")

    @staticmethod
    def matching(
        messages: list[Stored], which: bytes, by_uid: bool
    ) -> Iterator[tuple[int, Stored]]:
        highest = (messages[-1].uid if by_uid else len(messages)) if messages else 0
        wanted: set[int] = set()
        for piece in which.split(b","):
            low, _, high = piece.partition(b":")
            first = highest if low == b"*" else int(low)
            last = first if not high else (highest if high == b"*" else int(high))
            wanted.update(range(min(first, last), max(first, last) + 1))
        for number, message in enumerate(messages, 1):
            if (message.uid if by_uid else number) in wanted:
                yield number, message

    def fetch(self, number: int, message: Stored, items: bytes, by_uid: bool) -> None:
        parts: list[bytes] = []
        literal: bytes | None = None
        if by_uid or b"UID" in items:
            parts.append(b"UID %d" % message.uid)
        if b"RFC822.SIZE" in items:
            parts.append(b"RFC822.SIZE %d" % len(message.data))
        if b"FLAGS" in items:
            parts.append(b"FLAGS (" + " ".join(sorted(message.flags)).encode() + b")")
        if b"BODY[]" in items or b"BODY.PEEK[]" in items:
            if b"BODY.PEEK[]" not in items:
                message.flags.add("\\Seen")
            parts.append(b"BODY[] {%d}" % len(message.data))
            literal = message.data
        elif re.search(rb"RFC822(?![.])", items):
            message.flags.add("\\Seen")
            parts.append(b"RFC822 {%d}" % len(message.data))
            literal = message.data
        head = b"* %d FETCH (" % number + b" ".join(parts)
        if literal is None:
            self.send(head + b")")
        else:
            self.wfile.write(head + b"\r\n" + literal + b")\r\n")


def _words(args: bytes) -> list[str]:
    """Atoms and quoted strings of a command's arguments, unquoted."""
    words = []
    for quoted, listed, atom in _TOKEN.findall(args):
        if quoted or (not listed and not atom):
            words.append(re.sub(rb"\\(.)", rb"\1", quoted).decode())
        else:
            words.append((atom or listed).decode())
    return words
