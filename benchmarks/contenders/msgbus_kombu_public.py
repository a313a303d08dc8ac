"""msgbus-kombu on py-amqp's public API alone (``fast_path=false``): its reference path, measured
beside the default fast path (``msgbus-rabbit``)."""

from __future__ import annotations

from benchmarks.contenders.msgbus_contender import MsgbusContender


class MsgbusKombuPublicContender(MsgbusContender):
    """``msgbus-rabbit`` with the driver's fast path switched off."""

    def __init__(self) -> None:
        super().__init__("rabbit")
        self.name = "msgbus-rabbit-public"
        self.url += ("&" if "?" in self.url else "?") + "fast_path=false"
