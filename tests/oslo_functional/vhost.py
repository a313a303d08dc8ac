"""A virtual host of the shared broker for one run of oslo's functional tests.

oslo runs these tests on a throw-away broker (pifpaf); their notification topics have fixed
names (``test_simple``, ``test_logging_info_driver_messaging``...), so two runs on one broker
(two engineers, or CI beside a developer) would take each other's messages. Each run gets its
own vhost on the shared node at 127.0.0.1:5672, deleted with all its queues at the end.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from msgbus.testing import rabbitmq

__all__ = ["private_vhost"]


@contextlib.contextmanager
def private_vhost(user: str = "guest") -> Iterator[str]:
    """A new vhost ``user`` may use fully; deleted (queues and all) on exit."""
    name = f"msgbus-oslo-functional-{uuid.uuid4().hex[:8]}"
    rabbitmq.rabbitmqctl("add_vhost", name)
    try:
        rabbitmq.rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        yield name
    finally:
        rabbitmq.rabbitmqctl("delete_vhost", name)
