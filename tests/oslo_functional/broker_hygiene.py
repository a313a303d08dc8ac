"""The queues oslo's functional tests leave on the shared broker, deleted when unused.

oslo runs these tests on a throw-away broker (pifpaf); here they share the one at
127.0.0.1:5672, so their queues are deleted before the run (a message a killed run left in a
fixed-name notification queue would reach the next run's listener) and after it. Only names
these tests make are touched, and only queues without consumers (``if_unused``).
"""

from __future__ import annotations

import re

import amqp

from msgbus.testing import rabbitmq

__all__ = ["delete_leftovers", "is_ours"]

_PRIORITIES = r"(audit|critical|debug|error|info|sample|warn)"
# topics oslo's notification tests use (and a NotificationFixture's str(id(self)))
_NOTIFY_TOPICS = (r"(test_simple|test_simple_batch|test_compression|test_all_categories|"
                  r"test-topic|a|b|1|2|test_logging_[a-z]+_driver_messaging(v2)?|\d{9,})")
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
# RPC topics and servers: uuid4, 'topic_<uuid4>', servers 'server_<n>_<8 hex>', 'server_<uuid4>'
_OURS = re.compile(rf"{_NOTIFY_TOPICS}\.{_PRIORITIES}|(topic_)?{_UUID}"
                   rf"(\.(server_\d_[0-9a-f]{{8}}|server_{_UUID}))?(_fanout_[0-9a-f]+)?"
                   # test_oslo_service_launcher.py's
                   r"|msgbus-launcher-[0-9a-f]{12}(\.launched|_fanout_[0-9a-f]+)?")


def is_ours(queue: str) -> bool:
    """Whether ``queue`` is a name oslo's functional tests make."""
    return _OURS.fullmatch(queue) is not None


def delete_leftovers(host: str = "127.0.0.1", port: int = 5672) -> int:
    """Delete this suite's queues that nothing consumes; return how many were deleted."""
    names = [name for name in rabbitmq.list_queues() if is_ours(name)]
    deleted = 0
    conn = amqp.Connection(f"{host}:{port}", userid="guest", password="guest")
    conn.connect()
    try:
        channel = conn.channel()
        for name in names:
            try:
                channel.queue_delete(name, if_unused=True)
                deleted += 1
            except amqp.exceptions.ChannelError:  # in use or gone: leave it, new channel
                channel = conn.channel()
    finally:
        conn.close()
    return deleted
