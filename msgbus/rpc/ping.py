"""The ``oslo_rpc_server_ping`` endpoint that ``rpc_ping_enabled`` adds to every RPC server.

Monitoring tools call the method ``oslo_rpc_server_ping`` on a server to see that it is alive
and answering; oslo.messaging answers ``'pong'`` and so does msgbus.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from oslo_config import cfg

from msgbus import options

LOG = logging.getLogger(__name__)

#: The reserved method name; an endpoint of the application should not define it.
PING_METHOD = "oslo_rpc_server_ping"


class PingEndpoint:
    """Answers ``oslo_rpc_server_ping`` with ``'pong'`` (any keyword arguments are ignored)."""

    def oslo_rpc_server_ping(self, ctxt: Any, **kwargs: Any) -> str:
        return "pong"


def with_ping_endpoint(conf: cfg.ConfigOpts | None, endpoints: Sequence[Any]) -> list[Any]:
    """``endpoints``, plus a :class:`PingEndpoint` when ``rpc_ping_enabled`` is set in ``conf``.

    An application endpoint that defines ``oslo_rpc_server_ping`` itself is logged as using a
    reserved name; with ping enabled it keeps answering the method and no ping endpoint is
    added (oslo.messaging's rule)."""
    result = list(endpoints)
    taken = [ep for ep in result if getattr(ep, PING_METHOD, None) is not None]
    for endpoint in taken:
        LOG.warning("endpoint %r defines %s, a name reserved for the server's ping "
                    "(rpc_ping_enabled): rename the method", endpoint, PING_METHOD)
    if conf is None:
        return result
    options.register_opts(conf)
    if not conf.rpc_ping_enabled:
        return result
    if taken:
        LOG.warning("rpc_ping_enabled is set but endpoint %r already answers %s: no ping "
                    "endpoint added", taken[0], PING_METHOD)
        return result
    result.append(PingEndpoint())
    return result
