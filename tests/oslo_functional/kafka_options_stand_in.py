"""Stand-in for oslo.messaging's private ``_drivers.kafka_driver.kafka_options`` module.

oslo's functional test base class calls ``register_opts(conf, url)`` before every test; msgbus
has no Kafka driver, so there is nothing to register (a ``kafka://`` URL fails when its
transport is built, with msgbus's error naming the missing driver).
"""

from __future__ import annotations

from typing import Any


def register_opts(conf: Any, url: Any) -> None:
    """Register nothing: no Kafka driver, no Kafka options."""
