"""RPC: clients that call and cast, servers that dispatch to endpoints."""

from msgbus.rpc.client import RPCClient, get_rpc_client
from msgbus.rpc.dispatcher import (DefaultRPCAccessPolicy, ExplicitRPCAccessPolicy,
                                   LegacyRPCAccessPolicy, RPCAccessPolicyBase, RPCDispatcher,
                                   expected_exceptions, expose)
from msgbus.rpc.server import RPCServer, get_rpc_server

__all__ = ["RPCClient", "get_rpc_client", "RPCServer", "get_rpc_server", "RPCDispatcher",
           "RPCAccessPolicyBase", "DefaultRPCAccessPolicy", "ExplicitRPCAccessPolicy",
           "LegacyRPCAccessPolicy", "expose", "expected_exceptions"]
