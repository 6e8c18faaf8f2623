"""A small local Apache Kafka broker for development and tests, run from Maven jars.

No Docker and no Kafka tarball: the broker's jars are fetched once with Maven (``ensure_jars``)
and the broker runs as a plain ``java`` process in KRaft combined mode (broker and controller in
one process, static voters), listening on 127.0.0.1 only.

* ``launcher``: ``LocalKafka``, one broker process, in-process for tests and scripts::

      with LocalKafka() as kafka:          # ephemeral: temporary dir, free ports
          use(kafka.bootstrap)             # "127.0.0.1:<port>"

  ``LocalKafka(work_dir, port=..., controller_port=...)`` is durable: formatted once, its
  topics and offsets survive restarts.
* ``state``: the detached broker behind ``dispatch-rl run`` and ``dispatch-rl kafka``, recorded
  in ``<broker dir>/kafka.json`` (default broker dir ``<data dir>/kafka``, data dir
  ``$DISPATCH_RL_DATA_DIR``, else ``$XDG_DATA_HOME/dispatch-rl``, else
  ``~/.local/share/dispatch-rl``), on a stable port (19092, controller 19093).
* ``config``: ``server.properties`` (no auto-creation, no retention cut) and cluster ids.
* ``probe``: readiness asked with a real client (aiokafka's admin client).
* ``cli``: ``dispatch-rl kafka start|status|stop``.
* ``jars``: the jars (``DISPATCH_RL_KAFKA_HOME``, default ``~/.cache/dispatch-rl/kafka-<v>``).

Needs Java 17+; the first use needs Maven and Maven Central (about 46 MB of jars). A development
broker: one node, replication factor 1, PLAINTEXT, no authentication. It never auto-creates
topics, and its broker-wide retention is unlimited (topic configs decide).
"""

from streams.local_kafka.cli import main
from streams.local_kafka.jars import KAFKA_VERSION, KafkaLaunchError, ensure_jars, kafka_home
from streams.local_kafka.launcher import LocalKafka
from streams.local_kafka.probe import BrokerMetadata, broker_answers, cluster_metadata
from streams.local_kafka.state import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_PORT,
    KafkaState,
    KafkaStatus,
    default_broker_dir,
    default_data_dir,
    start,
    status,
    stop,
    using,
)

__all__ = [
    "DEFAULT_CONTROLLER_PORT",
    "DEFAULT_PORT",
    "KAFKA_VERSION",
    "BrokerMetadata",
    "KafkaLaunchError",
    "KafkaState",
    "KafkaStatus",
    "LocalKafka",
    "broker_answers",
    "cluster_metadata",
    "default_broker_dir",
    "default_data_dir",
    "ensure_jars",
    "kafka_home",
    "main",
    "start",
    "status",
    "stop",
    "using",
]
