"""Logging for `newsletter serve`: uvicorn's messages and the service's own warnings on
stderr, and (when asked for) an access log in the Common Log Format, also on stderr:

    127.0.0.1 - - [20/Nov/2026:19:00:00 +0700] "GET /tags HTTP/1.1" 200 -

(the size is "-": uvicorn does not count the bytes it sends). The key in a link from an
email (/confirm/..., /unsubscribe/..., /preferences/...) is left out: it stands for a
reader, and logs are read by more people than the readers' addresses should be."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from uvicorn.config import LOGGING_CONFIG

_READER_LINK = re.compile(r"^/(confirm|unsubscribe|preferences)/[^/?]+")


class CommonLogFormatter(logging.Formatter):
    """uvicorn's access records (client, method, path, HTTP version, status) as CLF lines."""

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return super().format(record)
        client, method, path, version, status = args
        host = str(client).rpartition(":")[0] or "-"  # "ip:port" -> ip
        path = _READER_LINK.sub(r"/\1/…", str(path))
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(record.created))
        return f'{host} - - [{when}] "{method} {path} HTTP/{version}" {status} -'


def log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging configuration, with the access log on stderr in CLF (or off) and
    the service's own warnings (newsletter.*) beside uvicorn's messages."""
    config: dict[str, Any] = {
        **LOGGING_CONFIG,
        "formatters": {
            **LOGGING_CONFIG["formatters"],
            "access": {"()": f"{__name__}.CommonLogFormatter"},
        },
        "handlers": {
            **LOGGING_CONFIG["handlers"],
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            **LOGGING_CONFIG["loggers"],
            "newsletter": {"handlers": ["default"], "level": "WARNING", "propagate": False},
        },
    }
    if not access_log:
        config["loggers"]["uvicorn.access"] = {"handlers": [], "propagate": False}
    return config
