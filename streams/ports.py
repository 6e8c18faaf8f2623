"""A listening socket for the web server that never stops a worker because its port is taken.

Several workers on one host share the configured `DISPATCH_RL_WEB_PORT`: the first binds it;
the next ones find it busy, bind a free port instead and say so in one log line (the port they
serve on is in that line and in the health endpoint), so a second worker joins the consumer
group instead of dying on `EADDRINUSE`. Any other bind error (no such address, no permission
for a port below 1024) is not a collision between workers and is raised.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

import structlog

__all__ = ["BoundPort", "listen_socket"]

log = structlog.get_logger("dispatch_rl.web")


@dataclass(frozen=True, slots=True)
class BoundPort:
    """A bound, listening TCP socket and which port it got."""

    sock: socket.socket
    host: str
    port: int
    requested: int
    """The configured port (0: any free port)."""

    @property
    def moved(self) -> bool:
        """True when the configured port was taken and another one was bound."""
        return self.requested != 0 and self.port != self.requested


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR lets a restarted worker rebind over TIME_WAIT; on Linux it does not let
        # two live listeners share a port (that would need SO_REUSEPORT), so busy stays busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def listen_socket(host: str, port: int) -> BoundPort:
    """Bind `host:port`; when that port is in use, bind a free port on `host` instead.

    The fallback logs one warning line `web_port_busy` naming both ports.
    """
    try:
        sock = _bind(host, port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or port == 0:
            raise
        sock = _bind(host, 0)
        bound = BoundPort(sock, host, sock.getsockname()[1], port)
        log.warning(
            "web_port_busy",
            message=f"web port {port} on {host} is busy (another worker on this host?); "
            f"serving on free port {bound.port}",
            requested=port,
            port=bound.port,
        )
        return bound
    return BoundPort(sock, host, sock.getsockname()[1], port)
