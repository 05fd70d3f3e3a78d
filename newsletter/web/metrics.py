"""GET /metrics: the process's Prometheus metrics, for a scraper on a private network.

Who may read them is `[metrics] allow`, a list of client networks (default: loopback
only); any other client, and everyone when `[metrics] enabled = false`, gets the same 404
as a path that does not exist, so the public cannot tell that it is there. The client
address is the one uvicorn reports: the peer, or the `X-Forwarded-For` of a proxy listed
in `--forwarded-allow-ips`.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from fastapi import APIRouter
from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from newsletter import metrics, storage
from newsletter.config import MetricsSettings

router = APIRouter()


def allowed(settings: MetricsSettings, host: str | None) -> bool:
    """Whether a client at `host` may read /metrics."""
    if not settings.enabled or host is None:
        return False
    try:
        address: IPv4Address | IPv6Address = ip_address(host)
    except ValueError:
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 on a dual-stack socket
    return any(address in network for network in settings.networks)


@router.get("/metrics", include_in_schema=False)
def scrape(request: Request) -> Response:
    """The text exposition format (runs in the thread pool: it reads the ledger)."""
    client = request.client.host if request.client else None
    if not allowed(request.app.state.settings.metrics, client):
        raise HTTPException(status_code=404)
    engine = request.app.state.engine

    def waiting() -> dict[str, int]:
        with Session(engine) as session:
            return storage.waiting_by_run_status(session)

    return Response(
        metrics.render(waiting),
        media_type=metrics.CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )
