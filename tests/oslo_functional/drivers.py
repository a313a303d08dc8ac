"""Where each run of oslo's functional tests points them: the variables oslo's tests read."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["BROKER", "environment"]

#: The shared RabbitMQ every broker test uses (never stopped or restarted by a test).
BROKER = "guest:guest@127.0.0.1:5672"

_SCHEMES = {"rabbit": "rabbit", "pika": "pika"}


def environment(driver: str, vhost: str) -> dict[str, str]:
    """The variables oslo's functional tox environments export, for msgbus's ``driver``.

    ``TRANSPORT_DRIVER`` is what oslo's failover test checks; the three URLs are what its
    ``SkipIfNoTransportURL`` reads (``RPC_TRANSPORT_URL``, ``NOTIFY_TRANSPORT_URL``).
    """
    url = f"{_SCHEMES[driver]}://{BROKER}/{quote(vhost, safe='')}"
    return {"TRANSPORT_DRIVER": driver, "TRANSPORT_URL": url,
            "RPC_TRANSPORT_URL": url, "NOTIFY_TRANSPORT_URL": url}
