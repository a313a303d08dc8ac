"""Helpers of the pika:// driver tests: URLs, configuration, cleanup, endpoints, log capture."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from oslo_config import cfg

from msgbus.testing import harness
from msgbus.testing.harness import Echo, LogCapture  # noqa: F401 (used by the tests)

HOST, PORT = "127.0.0.1", 5672
PIKA_URL = f"pika://guest:guest@{HOST}:{PORT}/"
RABBIT_URL = f"rabbit://guest:guest@{HOST}:{PORT}/"
#: Tuned reconnect options: no fast phase, a short back-off from the start instead. Tests run
#: with the DEFAULT options first; a tuned variant only runs beside a default one, to cover the
#: back-off path that default options reach only after reconnect_fast_period (30 s).
FAST_RECONNECT = {"reconnect_fast_period": 0, "rabbit_retry_interval": 0.05,
                  "rabbit_retry_backoff": 0.05, "rabbit_interval_max": 0.3}
#: ``options`` fixture ids -> URL options: the defaults, and the tuned variant beside them.
OPTION_SETS = {"default": {}, "tuned": FAST_RECONNECT}


def pika_url(host: str = HOST, port: int = PORT, **query: Any) -> str:
    """A pika:// URL for ``host:port`` with ``query`` options."""
    url = f"pika://guest:guest@{host}:{port}/"
    return url + ("?" + urlencode(query) if query else "")


def make_conf(core: dict[str, Any] | None = None, **overrides: Any) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with the driver's options registered and ``overrides`` set; ``core``
    sets msgbus's own ``[DEFAULT]`` options (e.g. ``listen_timeout``)."""
    from msgbus import options
    from msgbus_pika.options import GROUP, register_opts
    conf = cfg.ConfigOpts()
    conf([], project="msgbus-tests", default_config_files=[], default_config_dirs=[])
    register_opts(conf)
    options.register_opts(conf)
    for key, value in overrides.items():
        conf.set_override(key, value, group=GROUP)
    for key, value in (core or {}).items():
        conf.set_override(key, value)
    return conf


#: Every topic these tests make starts with this (the session deletes their queues at the end).
TOPIC_PREFIX = "msgbus-pika-"


def unique(name: str) -> str:
    """A topic name no other test (or test run) uses."""
    return f"{TOPIC_PREFIX}{name}-{uuid.uuid4().hex[:10]}"


class Closer(harness.Closer):
    """Servers and transports a test made (on ``PIKA_URL`` by default), closed after it."""

    def __init__(self) -> None:
        super().__init__(PIKA_URL, make_conf)


def delete_entities(queues: Sequence[str] = (), exchanges: Sequence[str] = ()) -> None:
    """Delete queues and exchanges on the shared broker (durable ones outlive their users);
    one that is gone already is skipped."""
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        HOST, PORT, credentials=pika.PlainCredentials("guest", "guest")))
    try:
        channel = conn.channel()
        for delete, names in ((lambda c, n: c.queue_delete(n), queues),
                              (lambda c, n: c.exchange_delete(n), exchanges)):
            for name in names:
                try:
                    delete(channel, name)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = conn.channel()
    finally:
        conn.close()
