"""A small POP3 server on loopback for tests: one user, one maildrop in memory (USER, PASS,
STAT, LIST, UIDL, RETR, DELE, RSET, NOOP, QUIT; deletions happen at QUIT, as RFC 1939
says)."""

from __future__ import annotations

import re
import socketserver
import threading
from types import TracebackType


class Pop3Server:
    """Start with `with Pop3Server(user, password) as server:`; `server.port` is where it
    listens, `server.messages` the maildrop."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.maildrop: list[tuple[int, bytes]] = []  # (serial, message)
        self.serial = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer.session(self)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def deliver(self, raw: bytes) -> None:
        with self.lock:
            self.serial += 1
            self.maildrop.append((self.serial, raw))

    @property
    def messages(self) -> list[bytes]:
        with self.lock:
            return [raw for _, raw in self.maildrop]

    def __enter__(self) -> Pop3Server:
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

    def session(self, handler: socketserver.StreamRequestHandler) -> None:
        def send(line: bytes) -> None:
            handler.wfile.write(line + b"\r\n")

        send(b"+OK test POP3 server ready")
        user: str | None = None
        authenticated = False
        drop: list[tuple[int, bytes]] = []
        deleted: set[int] = set()
        while True:
            line = handler.rfile.readline()
            if not line:
                return  # a dropped connection deletes nothing
            command, _, argument = line.rstrip(b"\r\n").decode("utf-8", "replace").partition(" ")
            command = command.upper()
            if command == "QUIT":
                if authenticated:
                    gone = {drop[n - 1][0] for n in deleted}
                    with self.lock:
                        self.maildrop = [m for m in self.maildrop if m[0] not in gone]
                send(b"+OK bye")
                return
            if command == "USER":
                user = argument
                send(b"+OK now the password")
            elif command == "PASS":
                if user == self.user and argument == self.password:
                    authenticated = True
                    with self.lock:
                        drop = list(self.maildrop)  # what this session sees
                    send(b"+OK logged in")
                else:
                    send(b"-ERR [AUTH] invalid user name or password")
            elif not authenticated:
                send(b"-ERR log in first")
            elif command == "NOOP":
                send(b"+OK")
            elif command == "STAT":
                live = [n for n in range(1, len(drop) + 1) if n not in deleted]
                size = sum(len(drop[n - 1][1]) for n in live)
                send(b"+OK %d %d" % (len(live), size))
            elif command in ("LIST", "UIDL"):
                send(b"+OK")
                for number, (serial, message) in enumerate(drop, 1):
                    if number not in deleted:
                        value = len(message) if command == "LIST" else serial
                        send(b"%d %d" % (number, value))
                send(b".")
            elif command in ("RETR", "DELE"):
                number = int(argument) if argument.isdigit() else 0
                if not 1 <= number <= len(drop) or number in deleted:
                    send(b"-ERR no such message")
                elif command == "DELE":
                    deleted.add(number)
                    send(b"+OK deleted")
                else:
                    send(b"+OK message follows")
                    for text in re.split(rb"\r?\n", drop[number - 1][1].rstrip(b"\r\n")):
                        send(b"." + text if text.startswith(b".") else text)
                    send(b".")
            elif command == "RSET":
                deleted.clear()
                send(b"+OK")
            else:
                send(b"-ERR unknown command")
