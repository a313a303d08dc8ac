"""msgbus-kombu: the ``rabbit://`` transport driver of msgbus, on kombu and py-amqp.

Installed as a plugin (entry point group ``msgbus.drivers``, names ``rabbit`` and ``kombu``);
applications never import it directly: ``msgbus.get_rpc_transport(url="rabbit://...")``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
