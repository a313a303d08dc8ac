"""msgbus's ``pika://`` driver: RabbitMQ through pika, wire-compatible with oslo.messaging.

Installed as a plugin (entry point group ``msgbus.drivers``, name ``pika``); users never import it:
``msgbus.get_rpc_transport(url="pika://user:pass@host:5672/")`` loads it.
"""

from msgbus_pika.driver import PikaDriver

__all__ = ["PikaDriver"]
