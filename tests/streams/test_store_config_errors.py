"""A store URL that cannot work is one clear error (the CLI prints it, exit 2), not a
traceback and not an endless retry; only an unreachable database server is waited for."""

from __future__ import annotations

import asyncio

import pytest

from streams.audit_service import StoreConfigError, _open_when_reachable


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nonsense", "Could not parse"),
        ("mysql://a@b/c", "mysql is not supported"),
        ("postgresql+nodriver://a@127.0.0.1:1/c", "nodriver"),
        ("sqlite:////proc/no-such-dir/audit.sqlite3", "cannot open sqlite:////proc/no-such-dir"),
    ],
)
async def test_unusable_store_urls_fail_at_once_with_the_reason(url: str, says: str) -> None:
    with pytest.raises(StoreConfigError, match=says):
        await asyncio.wait_for(_open_when_reachable(url), timeout=20)


async def test_unreachable_server_is_retried_not_raised() -> None:
    opening = asyncio.create_task(_open_when_reachable("postgresql+psycopg://u@127.0.0.1:1/db"))
    done, _ = await asyncio.wait([opening], timeout=2.5)
    assert not done, "an unreachable PostgreSQL server is waited for, not an error"
    opening.cancel()
