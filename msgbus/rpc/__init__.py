"""RPC: clients that call and cast, servers that dispatch to endpoints.

The names oslo.messaging's ``oslo_messaging.rpc`` offers are importable from here too.
"""

from msgbus.exceptions import (ClientSendError, ExpectedException, NoSuchMethod, RemoteError,
                               RPCDispatcherError, RPCVersionCapError, UnsupportedVersion)
from msgbus.rpc.client import RPCClient, get_rpc_client
from msgbus.rpc.dispatcher import (DefaultRPCAccessPolicy, ExplicitRPCAccessPolicy,
                                   LegacyRPCAccessPolicy, RPCAccessPolicyBase, RPCDispatcher,
                                   expected_exceptions, expose)
from msgbus.rpc.server import RPCServer, get_rpc_server
from msgbus.rpc.transport import get_rpc_transport

__all__ = ["RPCClient", "get_rpc_client", "RPCServer", "get_rpc_server", "RPCDispatcher",
           "RPCAccessPolicyBase", "DefaultRPCAccessPolicy", "ExplicitRPCAccessPolicy",
           "LegacyRPCAccessPolicy", "expose", "expected_exceptions", "get_rpc_transport",
           "ClientSendError", "ExpectedException", "NoSuchMethod", "RemoteError",
           "RPCDispatcherError", "RPCVersionCapError", "UnsupportedVersion"]
