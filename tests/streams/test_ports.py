"""The web server's listening socket: a busy port gives a free one and one log line."""

from __future__ import annotations

import socket

import pytest
from structlog.testing import capture_logs

from streams.ports import listen_socket


def test_free_port_is_bound_as_asked() -> None:
    """An unused port is bound as configured, without a warning."""
    with capture_logs() as logs:
        probe = listen_socket("127.0.0.1", 0)
    port = probe.port
    probe.sock.close()
    with capture_logs() as logs:
        bound = listen_socket("127.0.0.1", port)
    try:
        assert (bound.port, bound.moved) == (port, False)
        assert logs == []
    finally:
        bound.sock.close()


def test_busy_port_moves_to_a_free_one_with_one_log_line() -> None:
    """A port held by another listener (say, the first worker): a different free port is
    bound and listens, and exactly one warning names both ports."""
    first = listen_socket("127.0.0.1", 0)
    try:
        with capture_logs() as logs:
            second = listen_socket("127.0.0.1", first.port)
        try:
            assert second.moved and second.port != first.port and second.requested == first.port
            with socket.create_connection(("127.0.0.1", second.port), timeout=2):
                pass  # it really listens
            assert len(logs) == 1
            assert logs[0]["event"] == "web_port_busy"
            assert logs[0]["requested"] == first.port and logs[0]["port"] == second.port
            assert f"serving on free port {second.port}" in logs[0]["message"]
        finally:
            second.sock.close()
    finally:
        first.sock.close()


def test_other_bind_errors_are_raised() -> None:
    """An address this host does not have is a configuration error, not a busy port."""
    with pytest.raises(OSError):
        listen_socket("192.0.2.1", 0)  # TEST-NET-1: never local
