"""The public API: oslo.messaging's names, configuration on any ConfigOpts, the conf fixture."""

import subprocess
import sys
from typing import Any

import pytest
from oslo_config import cfg

import msgbus
import msgbus.fake
from msgbus.conffixture import ConfFixture


# oslo.messaging 18.3's top-level public names (dir(oslo_messaging) after a plain import).
OSLO_PUBLIC_NAMES = """
ClientSendError DefaultRPCAccessPolicy DriverLoadFailure ExecutorLoadFailure ExpectedException
ExplicitRPCAccessPolicy InvalidTarget InvalidTransportURL JsonPayloadSerializer
LegacyRPCAccessPolicy LoggingErrorNotificationHandler LoggingNotificationHandler
MessageDeliveryFailure MessageHandlingServer MessageUndeliverable MessagingException
MessagingServerError MessagingTimeout NoOpSerializer NoSuchMethod NotificationFilter
NotificationResult Notifier PublishErrorsHandler RPCAccessPolicyBase RPCClient RPCDispatcher
RPCDispatcherError RPCVersionCapError RemoteError Serializer ServerListenError Target Transport
TransportHost TransportOptions TransportURL UnsupportedVersion dispatcher exceptions
expected_exceptions expose get_batch_notification_listener get_notification_listener
get_notification_transport get_rpc_client get_rpc_server get_rpc_transport get_transport notify
rpc serializer server set_transport_defaults target transport
""".split()


def test_every_oslo_public_name_exists() -> None:
    assert [name for name in OSLO_PUBLIC_NAMES if not hasattr(msgbus, name)] == []


def test_fresh_configopts_gets_options_registered() -> None:
    conf = cfg.ConfigOpts()
    conf([], project="app", default_config_files=[])
    conf.register_opt(cfg.StrOpt("unrelated", default="x"))
    transport = msgbus.get_rpc_transport(conf, url="fake://")
    try:
        assert conf.control_exchange == "openstack"
        assert conf.rpc_response_timeout == 60
    finally:
        transport.cleanup()


def test_transport_url_from_conf() -> None:
    with ConfFixture() as fixture:
        fixture.transport_url = "fake://from-conf/"
        transport = msgbus.get_rpc_transport(fixture.conf)
        assert transport.url.hosts[0].hostname == "from-conf"
        transport.cleanup()


def test_conf_fixture_restores_overrides() -> None:
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[])
    fixture = ConfFixture(conf)
    fixture.setUp()
    fixture.response_timeout = 3
    assert conf.rpc_response_timeout == 3
    assert conf.transport_url == "fake://"
    fixture.cleanUp()
    assert conf.rpc_response_timeout == 60
    assert conf.transport_url is None


def test_set_transport_defaults_changes_control_exchange() -> None:
    msgbus.set_transport_defaults("myapp")
    try:
        transport = msgbus.get_rpc_transport(url="fake://")
        assert transport.driver.default_exchange == "myapp"
        transport.cleanup()
    finally:
        msgbus.set_transport_defaults("openstack")


def test_invalid_targets_name_the_missing_field() -> None:
    transport = msgbus.get_rpc_transport(url="fake://")
    try:
        server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t"), [])
        with pytest.raises(msgbus.InvalidTarget, match="server"):
            server.start()  # checked at start(), as oslo.messaging does
        assert not server.running
        with pytest.raises(msgbus.InvalidTarget, match="topic"):
            msgbus.get_rpc_client(transport, msgbus.Target()).cast({}, "m")
    finally:
        transport.cleanup()


def test_fake_brokers_are_shared_per_url_and_reset() -> None:
    a = msgbus.get_rpc_transport(url="fake://shared/")
    b = msgbus.get_rpc_transport(url="fake://shared/")
    c = msgbus.get_rpc_transport(url="fake://other/")
    try:
        assert msgbus.fake.broker_for(a) is msgbus.fake.broker_for(b)
        assert msgbus.fake.broker_for(a) is not msgbus.fake.broker_for(c)
        msgbus.fake.broker_for(a).declare_queue("leftover")
        msgbus.fake.reset()
        d = msgbus.get_rpc_transport(url="fake://shared/")
        assert not msgbus.fake.broker_for(d).has_queue("leftover")
        d.cleanup()
    finally:
        for t in (a, b, c):
            t.cleanup()


def test_context_objects_with_to_dict() -> None:
    class Ctx:
        def __init__(self, user: str) -> None:
            self.user = user

        def to_dict(self) -> dict:
            return {"user": self.user}

        @classmethod
        def from_dict(cls, d: dict) -> "Ctx":
            return cls(d["user"])

    class Api:
        def who(self, ctxt: Any) -> str:
            return f"{type(ctxt).__name__}:{ctxt.user}"

    transport = msgbus.get_rpc_transport(url="fake://ctx/")
    ser = msgbus.RequestContextSerializer(context_class=Ctx)
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [Api()],
                                   serializer=ser)
    server.start()
    try:
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), serializer=ser)
        assert client.call(Ctx("bob"), "who") == "Ctx:bob"
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_config_generator_documents_options() -> None:
    out = subprocess.run([sys.executable, "-m", "oslo_config.generator", "--namespace", "msgbus"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "transport_url" in out.stdout and "executor_thread_pool_size" in out.stdout


def test_cli_demo_runs_on_fake() -> None:
    out = subprocess.run([sys.executable, "-m", "msgbus", "demo"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "add(2, 3)           -> 5" in out.stdout
    assert "ZeroDivisionError" in out.stdout and "NoSuchMethod" in out.stdout
    assert sum(line.startswith("fanout") for line in out.stdout.splitlines()) == 2


def test_cli_bad_url_is_one_clear_line() -> None:
    out = subprocess.run([sys.executable, "-m", "msgbus", "demo", "--url", "fak://"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "did you mean 'fake'" in out.stderr and "Traceback" not in out.stderr
