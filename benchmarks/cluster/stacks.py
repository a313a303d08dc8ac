"""The stacks measured on the cluster: msgbus on one of its AMQP drivers or oslo.messaging's
rabbit driver, each with quorum or classic queues. Small runners of our own (the
``benchmarks.contenders`` ones are bound to the single shared broker): a transport, a client,
a notifier-free server running :class:`Endpoint`."""

from __future__ import annotations

import dataclasses
import threading
import warnings
from typing import Any

#: Bound of a server-side wait for casts to be counted (seconds).
COUNT_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class Stack:
    """``library`` (msgbus or oslo), its URL ``scheme`` and the queue kind (quorum or not)."""

    library: str
    scheme: str
    quorum: bool

    @property
    def name(self) -> str:
        return f"{self.library}-{self.scheme} {'quorum' if self.quorum else 'classic'}"


#: Every stack, in table order.
STACKS = [Stack(lib, scheme, quorum) for lib, scheme in (("msgbus", "rabbit"), ("msgbus", "pika"),
                                                        ("oslo", "rabbit"))
          for quorum in (True, False)]


class Endpoint:
    """``echo`` returns its payload; ``tick`` and ``fan`` count casts; ``count`` waits until
    a counter reaches ``n`` (bounded) and returns it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._counts = {"tick": 0, "fan": 0}

    def echo(self, ctxt: Any, payload: Any) -> Any:
        return payload

    def _add(self, key: str) -> None:
        with self._cond:
            self._counts[key] += 1
            self._cond.notify_all()

    def tick(self, ctxt: Any) -> None:
        self._add("tick")

    def fan(self, ctxt: Any) -> None:
        self._add("fan")

    def count(self, ctxt: Any, key: str, n: int) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._counts[key] >= n, COUNT_TIMEOUT)
            return self._counts[key]


def _msgbus_conf(quorum: bool) -> Any:
    from msgbus import options as core_options
    from msgbus_kombu.options import GROUP as KOMBU_GROUP
    from msgbus_kombu.options import register_opts as register_kombu
    from msgbus_pika.options import GROUP as PIKA_GROUP
    from msgbus_pika.options import register_opts as register_pika
    conf = core_options.new_conf()
    register_kombu(conf)
    register_pika(conf)
    for group in (KOMBU_GROUP, PIKA_GROUP):
        conf.set_override("rabbit_quorum_queue", quorum, group=group)
    return conf


def _oslo_conf(url: str, quorum: bool) -> Any:
    import importlib

    import oslo_messaging as om
    from oslo_config import cfg
    conf = cfg.ConfigOpts()
    conf([], project="oslo-cluster-bench", default_config_files=[], default_config_dirs=[])
    om.get_rpc_transport(conf, url=url).cleanup()  # registers oslo's options
    # oslo.messaging 18 registers its tracing and metrics options on the global CONF only
    for module, group in (("oslo_messaging._tracing.client", "oslo_messaging_tracing"),
                          ("oslo_messaging._metrics.client", "oslo_messaging_metrics")):
        try:
            conf.register_opts(getattr(importlib.import_module(module), group), group=group)
        except (ImportError, AttributeError):
            continue
    conf.set_override("rabbit_quorum_queue", quorum, group="oslo_messaging_rabbit")
    return conf


def library(stack: Stack) -> Any:
    """The API module: msgbus or oslo_messaging (both have Target, get_rpc_client, ...)."""
    if stack.library == "msgbus":
        import msgbus
        return msgbus
    with warnings.catch_warnings():  # eventlet's deprecation, on importing oslo
        warnings.simplefilter("ignore")
        import oslo_messaging
    return oslo_messaging


def transport(stack: Stack, url: str) -> Any:
    """An RPC transport of ``stack`` on the cluster ``url`` (a rabbit:// URL; the scheme is
    replaced by the stack's)."""
    lib = library(stack)
    url = f"{stack.scheme}://{url.split('://', 1)[1]}"
    if stack.library == "msgbus":
        return lib.get_rpc_transport(_msgbus_conf(stack.quorum), url=url)
    return lib.get_rpc_transport(_oslo_conf(url, stack.quorum), url=url)


def serve(stack: Stack, url: str, topic: str, server: str, ready: Any, stop: Any) -> None:
    """A server process: serve :class:`Endpoint` on ``topic``/``server`` until ``stop`` is set."""
    lib = library(stack)
    tr = transport(stack, url)
    kwargs = {"executor": "threading"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        srv = lib.get_rpc_server(tr, lib.Target(topic=topic, server=server), [Endpoint()],
                                 **kwargs)
    srv.start()
    ready.set()
    stop.wait()
    srv.stop()
    srv.wait()
    tr.cleanup()
