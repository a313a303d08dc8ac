"""Helpers of the rabbit:// driver tests: configuration, cleanup, endpoints, log capture."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from msgbus.testing import harness
from msgbus.testing.harness import Echo, LogCapture  # noqa: F401 (used by the tests)

HOST, PORT = "127.0.0.1", 5672
RABBIT_URL = f"rabbit://guest:guest@{HOST}:{PORT}/"
#: Options tuned for quicker reconnects than the defaults (which already retry every ~0.1 s
#: for the first 30 s of an outage). A test using them runs beside the same test on defaults.
FAST_RECONNECT = {"reconnect_fast_interval": 0.02, "rabbit_retry_interval": 0.05,
                  "rabbit_retry_backoff": 0.05, "rabbit_interval_max": 0.3}
#: Ids of the two option sets a fault test may run with (see :func:`tuned_conf`).
TUNINGS = ["defaults", "tuned"]


def make_conf(**overrides: Any) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with the driver's options registered and ``overrides`` set (in the
    driver's group, or in ``[DEFAULT]`` for the core's options such as
    ``reply_missing_queue_timeout``)."""
    from msgbus import options as core_options
    from msgbus_kombu.options import GROUP, register_opts
    conf = core_options.new_conf()
    register_opts(conf)
    for key, value in overrides.items():
        conf.set_override(key, value, group=GROUP if key in conf[GROUP] else None)
    return conf


def tuned_conf(tuning: str = "defaults", **overrides: Any) -> cfg.ConfigOpts:
    """:func:`make_conf` with the default options, or with :data:`FAST_RECONNECT` ("tuned")."""
    tuned = FAST_RECONNECT if tuning == "tuned" else {}
    return make_conf(**{**tuned, **overrides})


#: Every topic these tests make starts with this (the session deletes their queues at the end).
TOPIC_PREFIX = "msgbus-kombu-"


def unique(name: str) -> str:
    """A topic name no other test (or test run) uses."""
    return f"{TOPIC_PREFIX}{name}-{uuid.uuid4().hex[:10]}"


class Closer(harness.Closer):
    """Servers and transports a test made (on ``RABBIT_URL`` by default), closed after it."""

    def __init__(self) -> None:
        super().__init__(RABBIT_URL, make_conf)


def delete_entities(queues: Sequence[str] = (), exchanges: Sequence[str] = ()) -> None:
    """Delete queues and exchanges on the shared broker (e.g. durable ones a test made); one
    that is gone already is skipped."""
    import amqp
    conn = amqp.Connection(f"{HOST}:{PORT}", userid="guest", password="guest")
    conn.connect()
    try:
        channel = conn.channel()
        for delete, names in ((lambda c, n: c.queue_delete(n), queues),
                              (lambda c, n: c.exchange_delete(n), exchanges)):
            for name in names:
                try:
                    delete(channel, name)
                except amqp.exceptions.ChannelError:  # gone already: go on, on a new channel
                    channel = conn.channel()
    finally:
        conn.close()
