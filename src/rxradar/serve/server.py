"""Running the dashboard: check the address is free, say where it is (and warn when it is reachable
from other machines), record who started it, serve until stopped."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable

import uvicorn

from rxradar.serve.app import create_app
from rxradar.serve.auth import set_user, users
from rxradar.settings import Settings
from rxradar.workspace import Workspace


class AddressUnavailable(OSError):
    """Nothing can listen on the address asked for."""


def loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def check_address(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:
        raise AddressUnavailable(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                                 "choose another with --port") from None


def demo_user(ws: Workspace, actor: str, name: str = "demo") -> str:
    """Give the demo's user (an administrator) a new random password, and return it."""
    password = secrets.token_urlsafe(12)
    set_user(ws, name, "administrator", password, actor=actor)
    return password


def serve(ws: Workspace, settings: Settings, *, host: str, port: int, actor: str,
          say: Callable[[str], None], warn: Callable[[str], None], forwarded_allow_ips: str | None = None) -> None:
    """Serve the dashboard and API over the workspace's last analysis until interrupted. The start
    is audited (who, where); uvicorn's access log stays off, so no request reaches a log.

    X-Forwarded-For is believed only from ``forwarded_allow_ips`` (the reverse proxies in front):
    uvicorn's default believes any client on this machine, which could then pose as any address
    to the sign-in limits."""
    check_address(host, port)
    if not users(ws.meta):
        warn("this workspace has no dashboard users yet: add one with rxradar users add NAME --role investigator")
    if not loopback(host):
        warn(f"{host}:{port} is reachable from other machines: serve it behind TLS (a reverse proxy), as "
             "passwords and leads would otherwise cross the network in clear")
    ws.audit(actor, "serve", "dashboard", {"host": host, "port": port,
                                           **({"forwarded_allow_ips": forwarded_allow_ips} if forwarded_allow_ips else {})})
    say(f"dashboard of {ws.root} at {url(host, port)} (API: /api, OpenAPI: /openapi.json); Ctrl+C stops it")
    if not settings.secure_cookies and not loopback(host):
        warn("cookies are not marked Secure: behind TLS, pass --secure-cookies")
    app = create_app(ws.root, small_cell=settings.small_cell, secure_cookies=settings.secure_cookies,
                     max_request_bytes=settings.max_request_bytes, request_threads=settings.request_threads)
    uvicorn.run(app, host=host, port=port, log_level="warning",
                proxy_headers=forwarded_allow_ips is not None, forwarded_allow_ips=forwarded_allow_ips)
