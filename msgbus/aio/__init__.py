"""msgbus for asyncio code, in one import (see ``doc/asyncio.md``).

Servers and listeners built with ``executor="asyncio"`` run ``async def`` endpoint methods on
the application's event loop; every server has ``start_async``/``stop_async``/``wait_async``
and ``async with``; clients have ``call_async``/``cast_async``; :class:`AsyncNotifier` sends
notifications with ``await``.
"""

from msgbus.executors.aio import AsyncioExecutor
from msgbus.notify.notifier import AsyncNotifier

__all__ = ["AsyncioExecutor", "AsyncNotifier", "EXECUTOR"]

#: The executor name to pass to ``get_rpc_server`` and the listener factories.
EXECUTOR = "asyncio"
