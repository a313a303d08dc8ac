"""The driver interface: the only part of the core a transport driver implements.

A driver moves opaque message bodies (bytes made by :mod:`msgbus.envelope`) between the addresses
a :class:`~msgbus.target.Target` names. It does not know about RPC: message ids, reply
correlation, timeouts, heartbeats, failures and duplicate detection all live in the core.

Contract, in short:

* ``send`` delivers to the target's topic queue (load-balanced), to ``topic.server`` when
  ``target.server`` is set, or to every listener of the topic when ``target.fanout`` is true.
* ``listen`` consumes those three addresses for one RPC server and calls ``on_message`` for each
  delivery, from a driver thread. ``on_message`` returns quickly; it may be called concurrently.
* ``listen_for_replies`` creates the transport's one reply address; ``send_reply`` targets it.
* Notification sends and listens address queues named ``<topic>.<priority>`` (the core composes
  the topic), shared by listeners of one ``pool``; each pool gets its own copy of every message.
* Every method may be called from any thread. ``IncomingMessage.ack``/``requeue`` too.
"""

from __future__ import annotations

import abc
import enum
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from oslo_config import cfg

    from msgbus.target import Target
    from msgbus.transport_url import TransportURL

#: The interface version this core speaks. A driver declares the one it was written for.
API_VERSION = 1


class Capability(str, enum.Enum):
    """What a driver can promise beyond the basic contract; the conformance suite reads these."""

    #: ``IncomingMessage.requeue`` gives the message back for redelivery.
    REQUEUE = "requeue"
    #: A notification or topic message sent before any listener exists waits for one.
    STORE_AND_FORWARD = "store_and_forward"
    #: ``send(..., mandatory=True)`` raises MessageUndeliverable when no queue is bound.
    MANDATORY = "mandatory"
    #: Messages survive the listener's connection being dropped and re-established.
    RECONNECT = "reconnect"


@runtime_checkable
class IncomingMessage(Protocol):
    """One delivery handed to a listener callback."""

    body: bytes

    def ack(self) -> None:
        """Settle the delivery: the broker may forget it. Thread-safe; idempotent."""

    def requeue(self) -> None:
        """Give the delivery back for redelivery (when the driver has REQUEUE). Thread-safe."""


OnMessage = Callable[[IncomingMessage], None]


class Listener(abc.ABC):
    """A running subscription made by ``listen``, ``listen_for_notifications``."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop consuming and release the subscription's queues that are its own.

        When ``stop`` returns, no ``on_message`` call is running or will begin (unless ``stop`` is
        called from inside ``on_message``). Messages not yet delivered stay on the broker (shared
        queues) for other or later consumers. Deliveries already handed out may still be settled
        after ``stop``: their ``ack``/``requeue`` must reach the broker (keep the channel open
        until they are settled or the driver is closed), or they would be delivered twice.
        """


class Driver(abc.ABC):
    """Base class of transport drivers, loaded from the ``msgbus.drivers`` entry point group.

    ``conf`` is the user's ConfigOpts (the driver registers its own options in its own group);
    ``url`` the parsed transport URL; ``default_exchange`` the exchange for targets naming none.
    """

    #: The interface version the driver implements; must equal :data:`API_VERSION`.
    api_version: ClassVar[int] = 0
    #: What the driver promises beyond the basic contract.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, conf: "cfg.ConfigOpts", url: "TransportURL", default_exchange: str) -> None:
        self.conf = conf
        self.url = url
        self.default_exchange = default_exchange

    @abc.abstractmethod
    def send(self, target: "Target", body: bytes, *, ttl: float | None = None,
             retry: int | None = None, mandatory: bool = False) -> None:
        """Publish ``body`` to ``target`` (topic, server or fanout).

        ``ttl`` (seconds): the broker may drop the message if nobody took it by then (set on
        calls). ``retry``: None retries connection failures forever, 0 never, N at most N times,
        then raise MessageDeliveryFailure. ``mandatory``: raise MessageUndeliverable when no
        queue receives it. Returns once the broker has the message (confirmed, where it can).
        """

    @abc.abstractmethod
    def send_reply(self, reply_address: str, body: bytes, *, retry: int | None = None) -> None:
        """Publish ``body`` to a reply address made by another transport's listen_for_replies."""

    @abc.abstractmethod
    def send_notification(self, target: "Target", body: bytes, *,
                          retry: int | None = None) -> None:
        """Publish a notification to ``target.topic`` (``<topic>.<priority>``); kept until read."""

    @abc.abstractmethod
    def listen(self, target: "Target", on_message: OnMessage) -> Listener:
        """Consume an RPC server's topic, ``topic.server`` and fanout addresses.

        Returns once the queues exist and are bound: a message sent after ``listen`` returns
        reaches this listener (or, for the shared topic queue, another of its consumers).
        """

    @abc.abstractmethod
    def listen_for_notifications(self, targets: Sequence["Target"], pool: str | None,
                                 on_message: OnMessage) -> Listener:
        """Consume the notification queues of ``targets``; listeners of one pool share messages.

        Returns once the queues exist and are bound, as for :meth:`listen`.
        """

    @abc.abstractmethod
    def listen_for_replies(self, on_message: OnMessage) -> str:
        """Create this transport's reply address, consume it, and return the address.

        Called at most once per driver instance, on the first call; replies for every caller of the
        transport arrive through the one ``on_message``.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every listener, delete the driver's private queues, close connections."""

    def describe(self) -> dict[str, Any]:
        """Facts for logs and diagnostics (never passwords)."""
        return {"driver": type(self).__name__, "url": str(self.url)}


REQUIRED_METHODS = tuple(sorted(Driver.__abstractmethods__))
