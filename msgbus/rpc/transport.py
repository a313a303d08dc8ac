"""``get_rpc_transport`` where oslo.messaging users import it from
(``oslo_messaging.rpc.transport``)."""

from msgbus.transport import get_rpc_transport

__all__ = ["get_rpc_transport"]
