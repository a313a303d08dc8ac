"""msgbus on one of its drivers (``fake://``, ``rabbit://`` = msgbus-kombu, ``pika://``)."""

from __future__ import annotations

import importlib.metadata
import os
from types import ModuleType
from typing import Any

from benchmarks.contenders.base import rabbit_url
from benchmarks.contenders.rpc_api import RpcApiContender

DRIVER_GROUP = "msgbus.drivers"


def _driver_entry_point(scheme: str) -> importlib.metadata.EntryPoint | None:
    for entry_point in importlib.metadata.entry_points(group=DRIVER_GROUP):
        if entry_point.name == scheme:
            return entry_point
    return None


class MsgbusContender(RpcApiContender):
    """msgbus with the driver registered for ``scheme``."""

    def __init__(self, scheme: str) -> None:
        group = "fake" if scheme == "fake" else "rabbit"
        url = "fake://" if scheme == "fake" else rabbit_url(scheme)
        query = os.environ.get("BENCH_MSGBUS_QUERY", "")  # e.g. cast_confirm_window=0
        if query and scheme != "fake":
            url += "?" + query
        super().__init__(f"msgbus-{scheme}", group, url)
        self.scheme = scheme
        # call_async against this (threaded) server: the asyncio scenarios' msgbus baseline
        self.runs_async = scheme != "fake"

    async def open_async_session(self, topic: str) -> Any:
        from benchmarks.contenders.msgbus_async import open_msgbus_async_session
        return await open_msgbus_async_session(self, topic)

    def unavailable(self) -> str | None:
        try:
            from msgbus.driver.loader import load_driver_class
        except ImportError as exc:
            return f"msgbus not importable: {exc}"
        if _driver_entry_point(self.scheme) is None:
            return f"no {self.scheme!r} driver in entry point group {DRIVER_GROUP}"
        try:
            load_driver_class(self.scheme)
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not raised
            return f"driver does not load: {type(exc).__name__}: {exc}"
        return None

    def library(self) -> ModuleType:
        import msgbus
        return msgbus

    def make_transport(self) -> Any:
        import msgbus
        return msgbus.get_rpc_transport(url=self.url)

    def versions(self) -> dict[str, str]:
        found = {"msgbus": importlib.metadata.version("msgbus")}
        entry_point = _driver_entry_point(self.scheme)
        dist = getattr(entry_point, "dist", None)
        if dist is not None and dist.metadata["Name"] != "msgbus":
            found[dist.metadata["Name"]] = dist.version
        return found
