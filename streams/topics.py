"""The dispatch topics: names, partitions and configs, declared in one place.

Every topic carries raw bytes (keys and values): Faust never (de)serializes our events, the codec
(`streams.codec`) does. `topic_specs(settings)` is the one list of topics with their configs;
`declare_topics(app, settings)` turns it into Faust topics and `ensure_topics(settings)` creates
the missing ones on the broker with an admin client (run before a worker starts, so configs are
ours and not whatever auto-creation would pick).

Retention (settings, so an operator can shorten it where disk is scarce):

* input (`dispatch.heuristic_done`), `dispatch.optimized` and `dispatch.swap_audit`: one value,
  `topic_retention_ms`, default forever (`retention.ms=-1`, `retention.bytes=-1`): an auditor
  must be able to replay any past decision, and a replay needs its input day as long as the
  swap log that refers to it.
* `dispatch.dead_letter`: `dead_letter_retention_ms`, default one year.

All are `cleanup.policy=delete`: compaction would keep only the last record per dispatch, and the
audit topic holds many records per dispatch by design. `max.message.bytes` is 8 MiB on every
topic so a day near the size limits (2,000 bookings, 300 drivers) fits.

Existing topics are never altered, but `ensure_topics` compares their partitions and these
configs with the wanted ones and logs the differences in one warning line
(`topic_configs_differ`), so a topic made by someone else (or by an old broker's
auto-creation: 1 partition, 1 MB) does not pass unnoticed.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from streams.settings import DAY_MS, Settings

if TYPE_CHECKING:
    import faust

__all__ = [
    "DAY_MS",
    "MAX_MESSAGE_BYTES",
    "TopicSpec",
    "Topics",
    "apply_topic_configs",
    "bootstrap_list",
    "client_options",
    "consumer_group_options",
    "declare_topics",
    "ensure_topics",
    "existing_topics",
    "faust_broker_options",
    "ssl_context",
    "topic_differences",
    "topic_specs",
]

log = structlog.get_logger("dispatch_rl.topics")

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

    def spec(name: str, retention_ms: int) -> TopicSpec:
        configs = {
            "cleanup.policy": "delete",
            "retention.ms": str(retention_ms),
            "retention.bytes": "-1",
            "max.message.bytes": str(MAX_MESSAGE_BYTES),
        }
        return TopicSpec(name, settings.topic_partitions, settings.topic_replicas, configs)

    kept = settings.topic_retention_ms
    return [
        spec(settings.topic_input, kept),
        spec(settings.topic_optimized, kept),
        spec(settings.topic_audit, kept),
        spec(settings.topic_dead_letter, settings.dead_letter_retention_ms),
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


def consumer_group_options(settings: Settings) -> dict[str, Any]:
    """Session, heartbeat and rebalance timeouts for an aiokafka consumer in a group.

    Every consumer group of the worker (the Faust agent, the dataset writer, the audit store)
    uses these, so a dead worker's partitions move to a survivor within about
    `session_timeout_seconds + heartbeat_interval_seconds`.
    """
    session_ms = int(settings.session_timeout_seconds * 1000)
    return {
        "session_timeout_ms": session_ms,
        "heartbeat_interval_ms": int(settings.heartbeat_interval_seconds * 1000),
        "rebalance_timeout_ms": int(settings.rebalance_timeout_seconds * 1000),
        # aiokafka and Faust refuse a request timeout below the session timeout.
        "request_timeout_ms": max(40_000, session_ms + 5_000),
    }


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """`broker`, `broker_credentials` and the group timeouts for `faust.App` from the settings.

    Faust's own defaults (60 s session timeout) let a survivor wait about a minute before it
    takes over a dead worker's partitions; ours come from `consumer_group_options`.
    """
    import faust

    group = consumer_group_options(settings)
    opts: dict[str, Any] = {
        "broker": [f"kafka://{hp}" for hp in bootstrap_list(settings)],
        "broker_session_timeout": group["session_timeout_ms"] / 1000,
        "broker_heartbeat_interval": group["heartbeat_interval_ms"] / 1000,
        "broker_rebalance_timeout": group["rebalance_timeout_ms"] / 1000,
        "broker_request_timeout": max(90.0, group["request_timeout_ms"] / 1000),
    }
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

    Existing topics are left as they are (never altered), but their partitions and configs are
    compared with the wanted ones: differences are logged in one `topic_configs_differ`
    warning line (see `topic_differences`).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    wanted = list(specs if specs is not None else topic_specs(settings))
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, s.replicas, topic_configs=s.configs)
                    for s in missing
                ],
                timeout_ms=30_000,
            )
            for err in response.topic_errors:
                name, code = err[0], err[1]
                if code == 0:
                    created.append(name)
                elif code != _TOPIC_ALREADY_EXISTS:  # another worker won the race: fine
                    message = err[2] if len(err) > 2 else ""
                    raise RuntimeError(f"cannot create topic {name}: error {code} {message}")
        if created:
            log.info("topics_created", topics=created, partitions=settings.topic_partitions)
        others = [s for s in wanted if s.name not in created]
        differences = await _differences(admin, others) if others else []
        if differences:
            log.warning(
                "topic_configs_differ",
                differences=differences,
                hint="existing topics are not altered; `dispatch-rl topics apply` sets the "
                "wanted configs (never the partition count)",
            )
        return created
    finally:
        await admin.close()


async def existing_topics(settings: Settings) -> set[str]:
    """Names of the topics on the broker."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def topic_differences(
    settings: Settings, specs: Iterable[TopicSpec] | None = None
) -> list[str]:
    """How the existing topics differ from `specs` (default: `topic_specs(settings)`).

    One entry per difference, e.g. `dispatch.heuristic_done: partitions=1 (wanted 3)`; a
    missing topic reads `dispatch.x: missing`. Empty when everything matches.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    wanted = list(specs if specs is not None else topic_specs(settings))
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return await _differences(admin, wanted)
    finally:
        await admin.close()


async def apply_topic_configs(
    settings: Settings, specs: Iterable[TopicSpec] | None = None
) -> list[str]:
    """Set the wanted configs on the existing topics whose configs differ; return their names.

    For an operator who wants the settings (say, the retention) to apply to topics made
    earlier (`dispatch-rl topics apply`). AlterConfigs replaces a topic's whole set of dynamic
    configs with ours. The partition count is never changed: keyed records would move.
    """
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    wanted = list(specs if specs is not None else topic_specs(settings))
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        targets = [s for s in wanted if _config_only(await _differences(admin, [s]))]
        if not targets:
            return []
        responses = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, s.name, dict(s.configs)) for s in targets]
        )
        for response in responses:
            for resource in response.resources:
                code, message, name = resource[0], resource[1], resource[3]
                if code != 0:
                    raise RuntimeError(f"cannot alter the configs of {name}: {code} {message}")
        # The broker answers before the change reaches its metadata: wait until it shows.
        for _ in range(50):
            if not any([_config_only(await _differences(admin, [s])) for s in targets]):
                break
            await asyncio.sleep(0.2)
        return [s.name for s in targets]
    finally:
        await admin.close()


def _config_only(differences: list[str]) -> list[str]:
    """The config differences of an existing topic (not its partitions; none if missing)."""
    if any(d.endswith(": missing") for d in differences):
        return []
    return [d for d in differences if ": partitions=" not in d]


async def _differences(admin: Any, wanted: list[TopicSpec]) -> list[str]:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in wanted])}
    present = [s for s in wanted if described.get(s.name, {}).get("error_code", 3) == 0]
    actual_configs: dict[str, dict[str, str]] = {}
    if present:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in present]
        )
        for response in responses:
            for resource in response.resources:
                name, entries = resource[3], resource[4]
                actual_configs[name] = {str(e[0]): str(e[1]) for e in entries}
    out: list[str] = []
    for s in wanted:
        if s not in present:
            out.append(f"{s.name}: missing")
            continue
        partitions = len(described[s.name]["partitions"])
        if partitions != s.partitions:
            out.append(f"{s.name}: partitions={partitions} (wanted {s.partitions})")
        configs = actual_configs.get(s.name, {})
        for key, value in s.configs.items():
            if configs.get(key) != value:
                out.append(f"{s.name}: {key}={configs.get(key)} (wanted {value})")
    return out
