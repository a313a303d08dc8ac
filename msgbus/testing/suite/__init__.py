"""The conformance suite: ``from msgbus.testing.suite import *`` in a driver's test module.

Every class here is a group of pytest scenarios that use the ``bus`` fixture, which needs a
``transport_url`` fixture from the importing module. The fault scenarios also use a
``fault_injector`` fixture from that module (see :mod:`msgbus.testing.suite.faults`).
"""

from msgbus.testing.suite.rpc import *  # noqa: F401,F403
from msgbus.testing.suite.notifications import *  # noqa: F401,F403
from msgbus.testing.suite.driverlevel import *  # noqa: F401,F403
from msgbus.testing.suite.faults import *  # noqa: F401,F403
from msgbus.testing.suite.aio import *  # noqa: F401,F403
