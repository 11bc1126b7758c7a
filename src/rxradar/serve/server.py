"""Running the dashboard: check the address is free, record who started it, serve until stopped."""

from __future__ import annotations

import ipaddress
import socket

import uvicorn

from rxradar.serve.app import create_app
from rxradar.settings import Settings
from rxradar.workspace import Workspace


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def check_address(host: str, port: int) -> None:
    """Raise ValueError, saying why, when nothing could listen on host:port (in use, not ours)."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another with --port") \
            from None


def serve(ws: Workspace, settings: Settings, *, host: str, port: int, actor: str) -> None:
    """Serve the dashboard and API over the workspace's last analysis until interrupted. The start
    is audited (who, where); uvicorn's access log stays off, so no request path reaches a log."""
    check_address(host, port)
    ws.audit(actor, "serve", "dashboard", {"host": host, "port": port})
    uvicorn.run(create_app(ws.root, small_cell=settings.small_cell), host=host, port=port, log_level="warning")
