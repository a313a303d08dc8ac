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

Deadlines and retries (interface version 2):

* ``deadline`` is a :func:`time.monotonic` instant or None. Every wait a driver takes on behalf of
  that send or listen (connecting, channel and reply-queue setup, declaring, waiting for a
  confirm, for a free connection, or between retries) ends by it; when it passes, the driver
  raises :class:`~msgbus.exceptions.MessagingTimeout` (or, for a listen,
  :class:`~msgbus.exceptions.MessageDeliveryFailure`) instead of waiting on. The core gives a
  call's send the call's deadline, so ``call(timeout=T)`` ends within T whatever the broker does.
* ``retry`` reaches the driver normalised by the core: None retries connection failures forever
  (within the deadline), 0 never, N > 0 at most N times. It is never negative.
* ``send_reply`` tries once when the reply address does not exist and raises
  MessageUndeliverable; the core retries it in the background (one rule for every driver).

A driver written for interface version 1 (no ``deadline`` keywords) still loads: the core logs
once what to add and calls it without deadlines (its calls may then outlive their timeout).
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
API_VERSION = 2
#: Older interface versions the core still loads (without passing deadlines; see above).
COMPATIBLE_API_VERSIONS = frozenset({1, 2})
#: What a version 1 driver lacks: the ``deadline`` keyword of these methods.
DEADLINE_METHODS = ("send", "send_reply", "send_notification", "listen",
                    "listen_for_notifications", "listen_for_replies")


class Capability(str, enum.Enum):
    """What a driver can promise beyond the basic contract; the conformance suite reads these."""

    #: ``IncomingMessage.requeue`` gives the message back for redelivery (to this or another
    #: listener of the same queue).
    REQUEUE = "requeue"
    #: An RPC message sent to a topic (or ``topic.server``) whose servers have all stopped
    #: waits for the next server that listens on it.
    RPC_STORE_AND_FORWARD = "rpc_store_and_forward"
    #: A notification sent before any listener of its topic ran waits for the first one (and
    #: one that arrives while listeners are stopped waits for the next).
    NOTIFY_STORE_AND_FORWARD = "notify_store_and_forward"
    #: Both of the above (kept for drivers written before the two were told apart).
    STORE_AND_FORWARD = "store_and_forward"
    #: ``send(..., mandatory=True)`` raises MessageUndeliverable when no queue is bound.
    MANDATORY = "mandatory"
    #: The driver survives broker faults by itself: dropped or frozen connections and a broker
    #: restart. Listeners re-declare and consume again, sends retry within their deadline and
    #: retry budget, and every send that returned without error is delivered. The fault
    #: scenarios of the suite apply (they need a ``fault_injector`` fixture).
    RECONNECT = "reconnect"


def expand_capabilities(declared: frozenset[Capability]) -> frozenset[Capability]:
    """``declared`` with STORE_AND_FORWARD read as both kinds of store-and-forward."""
    if Capability.STORE_AND_FORWARD in declared:
        return declared | {Capability.RPC_STORE_AND_FORWARD,
                           Capability.NOTIFY_STORE_AND_FORWARD}
    return declared


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

    Optional hook (looked up with ``getattr``; a driver without it still loads):
    ``keep_reply_queue() -> None`` is called by the core just before :meth:`close` when calls
    gave up while their replies may still come; the driver then leaves its reply queue to the
    broker (to expire unused) instead of deleting it, so a late reply is routed into it and the
    replying server is not stalled retrying into a missing queue.
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
             retry: int | None = None, mandatory: bool = False,
             deadline: float | None = None) -> None:
        """Publish ``body`` to ``target`` (topic, server or fanout).

        ``ttl`` (seconds): the broker may drop the message if nobody took it by then (set on
        calls). ``retry``: None retries connection failures forever, 0 never, N at most N times,
        then raise MessageDeliveryFailure. ``mandatory``: raise MessageUndeliverable when no
        queue receives it. ``deadline``: see the module docstring; raise MessagingTimeout when
        it passes. Returns once the broker has the message (confirmed, where it can), or, for a
        cast a driver pipelines, once the driver has taken responsibility for delivering it.
        """

    @abc.abstractmethod
    def send_reply(self, reply_address: str, body: bytes, *, retry: int | None = None,
                   deadline: float | None = None) -> None:
        """Publish ``body`` to a reply address made by another transport's listen_for_replies.

        Raises MessageUndeliverable at once when the address does not exist (the core retries).
        """

    @abc.abstractmethod
    def send_notification(self, target: "Target", body: bytes, *, retry: int | None = None,
                          deadline: float | None = None) -> None:
        """Publish a notification to ``target.topic`` (``<topic>.<priority>``); kept until read."""

    @abc.abstractmethod
    def listen(self, target: "Target", on_message: OnMessage, *,
               deadline: float | None = None) -> Listener:
        """Consume an RPC server's topic, ``topic.server`` and fanout addresses.

        Returns once the queues exist and are bound: a message sent after ``listen`` returns
        reaches this listener (or, for the shared topic queue, another of its consumers).
        Raises MessageDeliveryFailure, naming the broker, when that is not done by ``deadline``.
        """

    @abc.abstractmethod
    def listen_for_notifications(self, targets: Sequence["Target"], pool: str | None,
                                 on_message: OnMessage, *,
                                 deadline: float | None = None) -> Listener:
        """Consume the notification queues of ``targets``; listeners of one pool share messages.

        Returns once the queues exist and are bound, as for :meth:`listen`.
        """

    @abc.abstractmethod
    def listen_for_replies(self, on_message: OnMessage, *,
                           deadline: float | None = None) -> str:
        """Create this transport's reply address, consume it, and return the address.

        Called at most once per driver instance, on the first call, with that call's deadline
        (raise MessagingTimeout when it passes: the wait is the call's); replies for every caller
        of the transport arrive through the one ``on_message``. After a reconnect the driver
        makes the same address exist again. Replies may be redelivered after a cut (the core
        drops duplicates), so consume them with acknowledgements where the broker has them: a
        reply on its way when a connection drops must not be lost.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every listener, delete the driver's private queues, close connections."""

    def describe(self) -> dict[str, Any]:
        """Facts for logs and diagnostics (never passwords)."""
        return {"driver": type(self).__name__, "url": self.url.masked}


REQUIRED_METHODS = tuple(sorted(Driver.__abstractmethods__))
