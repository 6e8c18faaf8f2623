"""The dispatch topics: names, partitions and configs, declared in one place.

Every topic carries raw bytes (keys and values): Faust never (de)serializes our events, the codec
(`streams.codec`) does. `topic_specs(settings)` is the one list of topics with their configs;
`declare_topics(app, settings)` turns it into Faust topics and `ensure_topics(settings)` creates
the missing ones on the broker with an admin client (run before a worker starts, so configs are
ours and not whatever auto-creation would pick).

Retention, chosen per topic:

* input (`dispatch.heuristic_done`): 7 days, enough to replay a week into a fresh worker or a
  rebuilt dataset.
* `dispatch.optimized`: 30 days; downstream systems and the dataset writer read it.
* `dispatch.swap_audit`: kept indefinitely (`retention.ms=-1`, `retention.bytes=-1`): auditors must
  be able to explain any past decision.
* `dispatch.dead_letter`: 30 days for operators to inspect and re-publish.

All are `cleanup.policy=delete`: compaction would keep only the last record per dispatch, and the
audit topic holds many records per dispatch by design. `max.message.bytes` is raised to 8 MiB on
the input and output topics so a day near the size limits (2,000 bookings, 300 drivers) fits.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streams.settings import Settings

if TYPE_CHECKING:
    import faust

DAY_MS = 24 * 60 * 60 * 1000
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as the service wants it on the broker."""

    name: str
    partitions: int
    replicas: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Input, optimized, audit and dead-letter topics, in that order."""
    big = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}

    def spec(name: str, retention_ms: int, **extra: str) -> TopicSpec:
        configs = {"cleanup.policy": "delete", "retention.ms": str(retention_ms), **extra}
        return TopicSpec(name, settings.topic_partitions, settings.topic_replicas, configs)

    return [
        spec(settings.topic_input, 7 * DAY_MS, **big),
        spec(settings.topic_optimized, 30 * DAY_MS, **big),
        spec(settings.topic_audit, -1, **{"retention.bytes": "-1"}),
        spec(settings.topic_dead_letter, 30 * DAY_MS, **big),
    ]


@dataclass(frozen=True, slots=True)
class Topics:
    """The Faust topics of one app (raw bytes keys and values)."""

    input: faust.TopicT
    optimized: faust.TopicT
    audit: faust.TopicT
    dead_letter: faust.TopicT


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """Declare the four topics on `app` with the configs of `topic_specs`."""

    def topic(s: TopicSpec) -> faust.TopicT:
        return app.topic(
            s.name,
            partitions=s.partitions,
            replicas=s.replicas,
            config=dict(s.configs),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    inp, opt, audit, dead = (topic(s) for s in topic_specs(settings))
    return Topics(input=inp, optimized=opt, audit=audit, dead_letter=dead)


def bootstrap_list(settings: Settings) -> list[str]:
    """`host:port` entries of `settings.bootstrap_servers`; ValueError when unset."""
    if not settings.bootstrap_servers:
        raise ValueError("no Kafka bootstrap servers configured (DISPATCH_RL_BOOTSTRAP_SERVERS)")
    return [s.strip() for s in settings.bootstrap_servers.split(",") if s.strip()]


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying TLS context for SSL and SASL_SSL, else None."""
    if not settings.security_protocol.endswith("SSL"):
        return None
    cafile = str(settings.ssl_cafile) if settings.ssl_cafile else None
    return ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=cafile)


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (producer, consumer, admin) from the settings."""
    opts: dict[str, Any] = {
        "bootstrap_servers": bootstrap_list(settings),
        "security_protocol": settings.security_protocol,
    }
    ctx = ssl_context(settings)
    if ctx is not None:
        opts["ssl_context"] = ctx
    if settings.security_protocol.startswith("SASL"):
        opts["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        opts["sasl_plain_username"] = settings.sasl_username
        opts["sasl_plain_password"] = settings.sasl_password
    return opts


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """`broker` and `broker_credentials` for `faust.App` from the settings."""
    import faust

    opts: dict[str, Any] = {"broker": [f"kafka://{hp}" for hp in bootstrap_list(settings)]}
    ctx = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        opts["broker_credentials"] = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=ctx,
        )
    elif ctx is not None:
        opts["broker_credentials"] = ctx
    return opts


async def ensure_topics(settings: Settings, specs: Iterable[TopicSpec] | None = None) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Existing topics are left as they are (their configs are not altered).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    wanted = list(specs if specs is not None else topic_specs(settings))
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(s.name, s.partitions, s.replicas, topic_configs=s.configs) for s in missing],
            timeout_ms=30_000,
        )
        created: list[str] = []
        for err in response.topic_errors:
            name, code = err[0], err[1]
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:  # another worker won the race: fine
                message = err[2] if len(err) > 2 else ""
                raise RuntimeError(f"cannot create topic {name}: error {code} {message}")
        return created
    finally:
        await admin.close()
