"""oslo.messaging (from PyPI) on its ``fake://`` or ``rabbit://`` driver: the reference."""

from __future__ import annotations

import importlib.metadata
from types import ModuleType
from typing import Any

from benchmarks.contenders.base import rabbit_url
from benchmarks.contenders.rpc_api import RpcApiContender


class OsloContender(RpcApiContender):
    """oslo.messaging with its own driver for ``scheme``."""

    def __init__(self, scheme: str) -> None:
        group = "fake" if scheme == "fake" else "rabbit"
        url = "fake://" if scheme == "fake" else rabbit_url(scheme)
        super().__init__(f"oslo-{scheme}", group, url)

    def unavailable(self) -> str | None:
        try:
            import oslo_messaging  # noqa: F401
        except ImportError as exc:
            return str(exc)
        return None

    def library(self) -> ModuleType:
        import oslo_messaging
        return oslo_messaging

    def make_transport(self) -> Any:
        import oslo_messaging
        from oslo_config import cfg
        # oslo.messaging 18 registers some options (tracing) on the global CONF only, so a
        # private ConfigOpts breaks calls: use the global one, as an OpenStack service does
        return oslo_messaging.get_rpc_transport(cfg.CONF, url=self.url)

    def reply_queue_of(self, transport: Any) -> str | None:
        # oslo's reply queue is neither exclusive nor auto-delete: it outlives the transport
        # (until its x-expires), so the harness deletes it by name
        name = getattr(getattr(transport, "_driver", None), "_reply_q", None)
        return name if isinstance(name, str) else None

    def versions(self) -> dict[str, str]:
        found = {"oslo.messaging": importlib.metadata.version("oslo.messaging")}
        if self.group == "rabbit":
            found["kombu"] = importlib.metadata.version("kombu")
        return found
