"""The driver SPI: what a transport driver implements and may import from the core.

A driver imports :class:`Driver`, :class:`Listener`, :class:`IncomingMessage`,
:class:`Capability` and :data:`API_VERSION` from here, exceptions from :mod:`msgbus.exceptions`,
and (AMQP drivers) the shared naming rules from :mod:`msgbus.driver.amqp` and the rule for
unroutable casts from :mod:`msgbus.driver.held_casts`. Nothing else.
"""

from msgbus.driver.base import (API_VERSION, Capability, Driver, IncomingMessage, Listener,
                                OnMessage, expand_capabilities)

__all__ = ["API_VERSION", "Capability", "Driver", "IncomingMessage", "Listener", "OnMessage",
           "expand_capabilities"]
