"""The driver SPI: what a transport driver implements and may import from the core.

A driver imports :class:`Driver`, :class:`Listener`, :class:`IncomingMessage`,
:class:`Capability` and :data:`API_VERSION` from here, exceptions from :mod:`msgbus.exceptions`,
and (AMQP drivers) the shared naming rules from :mod:`msgbus.driver.amqp`. Nothing else.
"""

from msgbus.driver.base import (API_VERSION, Capability, Driver, IncomingMessage, Listener,
                                OnMessage)

__all__ = ["API_VERSION", "Capability", "Driver", "IncomingMessage", "Listener", "OnMessage"]
