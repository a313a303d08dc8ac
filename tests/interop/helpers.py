"""Helpers of the interop tests: URLs, unique topics, oslo.messaging's side."""

from __future__ import annotations

import importlib
import uuid
from typing import Any

import oslo_messaging as om
from oslo_config import cfg

from msgbus import options
from msgbus.testing.harness import Closer

HOST, PORT = "127.0.0.1", 5672
URLS = {"rabbit": f"rabbit://guest:guest@{HOST}:{PORT}/",
        "pika": f"pika://guest:guest@{HOST}:{PORT}/",
        "fake": "fake://interop/"}
#: Every topic these tests make starts with this (the session deletes their queues at the end).
TOPIC_PREFIX = "msgbus-test-interop-"


def unique_topic(name: str) -> str:
    """A topic no other test (or test run) uses."""
    return f"{TOPIC_PREFIX}{name}-{uuid.uuid4().hex[:10]}"


def oslo_conf() -> cfg.ConfigOpts:
    """A private ConfigOpts oslo.messaging can run on."""
    conf = cfg.ConfigOpts()
    conf([], project="msgbus-interop", default_config_files=[], default_config_dirs=[])
    # oslo.messaging 18 reads its tracing and metrics groups but registers them on the global
    # CONF only: register them here too
    for module, group in (("oslo_messaging._tracing.client", "oslo_messaging_tracing"),
                          ("oslo_messaging._metrics.client", "oslo_messaging_metrics")):
        opts = getattr(importlib.import_module(module), group, None)
        if opts is not None:
            conf.register_opts(opts, group=group)
    return conf


class Oslo:
    """oslo.messaging transports and servers a test made, cleaned up after it."""

    def __init__(self) -> None:
        self._cleanups: list[Any] = []

    def transport(self, allowed: list[str] | None = None) -> Any:
        transport = om.get_rpc_transport(oslo_conf(), url=URLS["rabbit"],
                                         allowed_remote_exmods=allowed or [])
        self._cleanups.append(transport.cleanup)
        return transport

    def server(self, topic: str, endpoints: list[Any], server: str = "oslo1") -> Any:
        srv = om.get_rpc_server(self.transport(), om.Target(topic=topic, server=server),
                                endpoints, executor="threading")
        srv.start()
        self._cleanups.append(lambda: (srv.stop(), srv.wait()))
        return srv

    def client(self, topic: str, timeout: float = 30.0) -> Any:
        return om.get_rpc_client(self.transport(), om.Target(topic=topic), timeout=timeout)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()
        self._cleanups.clear()


def msgbus_closer(scheme: str) -> Closer:
    """The harness's Closer (transports and servers closed in reverse order) on one driver."""
    return Closer(URLS[scheme], options.new_conf)
