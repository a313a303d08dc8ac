"""The RPC client's argument mistakes get errors that show the right spelling."""

import asyncio

import pytest

import msgbus


@pytest.fixture
def transport():
    transport = msgbus.get_rpc_transport(url="fake://")
    yield transport
    transport.cleanup()


def test_a_topic_string_as_target_says_to_build_a_target(transport) -> None:
    with pytest.raises(TypeError, match=r"msgbus.Target\(topic='calc'\)"):
        msgbus.get_rpc_client(transport, "calc")
    with pytest.raises(TypeError, match="must be a msgbus.Target"):
        msgbus.RPCClient(transport, "calc")


@pytest.mark.parametrize("kind", ["call", "cast"])
def test_positional_method_arguments_say_to_pass_keywords(transport, kind) -> None:
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic="calc"), timeout=1)
    with pytest.raises(TypeError, match=rf"{kind}\(\) sends the arguments of 'add' by name"):
        getattr(client, kind)({}, "add", 1, 2)


@pytest.mark.parametrize("kind", ["call_async", "cast_async"])
def test_positional_arguments_of_awaited_calls_too(transport, kind) -> None:
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic="calc"), timeout=1)
    with pytest.raises(TypeError, match="pass them as keywords"):
        asyncio.run(getattr(client, kind)({}, "add", 1, 2))


def test_a_remote_argument_named_args_still_travels_by_name(transport) -> None:
    class Echo:
        def echo(self, ctxt, args):
            return args

    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="echo", server="s"), [Echo()])
    server.start()
    try:
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="echo"), timeout=5)
        assert client.call({}, "echo", args=[1, 2]) == [1, 2]
    finally:
        server.stop()
        server.wait()


def test_a_url_as_notification_conf_says_to_use_url() -> None:
    with pytest.raises(TypeError, match="url="):
        msgbus.get_notification_transport("fake://")


def test_ping_endpoint_is_added_by_get_rpc_server_when_enabled() -> None:
    from msgbus import options
    conf = options.new_conf()
    conf.set_override("rpc_ping_enabled", True)
    transport = msgbus.get_rpc_transport(conf, url="fake://")
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="p", server="s"), [])
    server.start()
    try:
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="p"), timeout=5)
        assert client.call({}, "oslo_rpc_server_ping") == "pong"
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
