"""oslo.messaging's configuration spellings drive msgbus: groups, option names, deprecation
warnings naming the new spelling, ConfFixture's oslo groups, queue arguments as oslo 18.3's."""

from __future__ import annotations

import logging
import pathlib
import uuid
from typing import Any

import pytest
from oslo_config import cfg
from oslo_messaging._drivers import impl_rabbit  # the reference for queue arguments

from msgbus import options
from msgbus.conffixture import ConfFixture
from msgbus.driver.amqp import AmqpSettings, QueueNamer, Topology, tls_version
from msgbus.exceptions import ConfigurationError
from msgbus.notify import options as notify_options
from msgbus.rpc.ping import PingEndpoint, with_ping_endpoint
from msgbus_kombu import options as kombu_options
from msgbus_pika import options as pika_options

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICE_CONF = pathlib.Path("/work/shared/samples/openstack-service.conf")
SAMPLES = ROOT / "tests" / "interop" / "samples"


def load(*files: pathlib.Path) -> cfg.ConfigOpts:
    """A ConfigOpts reading ``files`` as a service would, with msgbus's options registered."""
    conf = cfg.ConfigOpts()
    args = [arg for path in files for arg in ("--config-file", str(path))]
    conf(args, project="msgbus-test", default_config_files=[], default_config_dirs=[])
    return options.register_opts(conf)


def write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "service.conf"
    path.write_text(text)
    return path


@pytest.fixture
def service_conf() -> pathlib.Path:
    # the shared sample when present, else a copy of what it holds for the options checked here
    return SERVICE_CONF if SERVICE_CONF.exists() else SAMPLES / "nova-quorum.conf"


def test_the_openstack_service_file_drives_both_amqp_drivers(service_conf: pathlib.Path) -> None:
    conf = load(service_conf)
    kombu = kombu_options.read_settings(conf)
    pika = pika_options.PikaSettings.from_conf(conf)
    for amqp in (kombu.amqp, pika.amqp):
        assert amqp.quorum and amqp.durable and amqp.transient_quorum
        assert amqp.prefetch == 100
        assert amqp.heartbeat == 30
        assert amqp.quorum_delivery_limit == 5
    assert kombu.kombu.failover_strategy == "shuffle"
    assert conf.control_exchange == "nova"
    assert conf.rpc_response_timeout == 120


def test_tls_asked_for_in_the_oslo_group_is_on(service_conf: pathlib.Path) -> None:
    conf = load(SERVICE_CONF) if SERVICE_CONF.exists() else None
    if conf is None:  # the shared sample asks for TLS; ours has its own TLS file
        conf = load(SAMPLES / "nova-tls.conf")
    for amqp in (kombu_options.read_settings(conf).amqp,
                 pika_options.PikaSettings.from_conf(conf).amqp):
        assert amqp.ssl is True
        assert amqp.ssl_ca_file.endswith("rabbit-ca.pem")


def test_notifier_options_come_from_oslo_messaging_notifications(
        service_conf: pathlib.Path) -> None:
    group = notify_options.group(load(service_conf))
    assert group.driver == ["messagingv2"]
    assert group.topics == ["notifications", "versioned_notifications"]
    assert group.retry == -1


def test_old_default_notification_names_are_read() -> None:
    group = notify_options.group(load(SAMPLES / "legacy-notifications.conf"))
    assert group.driver == ["messagingv2"]
    assert group.topics == ["notifications_legacy"]
    assert group.transport_url == "rabbit://guest:guest@127.0.0.1:5672/"


def test_deprecation_warning_names_the_new_spelling(tmp_path: pathlib.Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # oslo.log says each deprecation once per process: an option no other test sets
    conf = load(write(tmp_path, "[oslo_messaging_rabbit]\namqp_auto_delete = true\n"))
    with caplog.at_level(logging.WARNING, logger="oslo_config.cfg"):
        assert kombu_options.read_settings(conf).amqp.auto_delete is True
    assert ('"amqp_auto_delete" from group "oslo_messaging_rabbit" is deprecated. '
            'Use option "amqp_auto_delete" from group "msgbus_rabbit"') in caplog.text


def _aliases(opts: list[cfg.Opt], name: str) -> set[tuple[str, str]]:
    opt = next(o for o in opts if o.dest == name)
    return {(d.name, d.group) for d in opt.deprecated_opts}


def test_renamed_options_have_their_oslo_names_as_aliases(tmp_path: pathlib.Path) -> None:
    assert ("kombu_failover_strategy", "oslo_messaging_rabbit") in _aliases(
        kombu_options.kombu_opts, "failover_strategy")
    assert {("driver", "oslo_messaging_notifications"), ("notification_driver", "DEFAULT")} <= \
        _aliases(notify_options.notifier_opts, "driver")
    assert ("kombu_missing_consumer_retry_timeout", "oslo_messaging_rabbit") in _aliases(
        options.rpc_opts, "reply_missing_queue_timeout")
    conf = load(write(tmp_path, "[oslo_messaging_rabbit]\nkombu_failover_strategy = shuffle\n"
                                "[oslo_messaging_notifications]\ndriver = log\n"))
    assert kombu_options.read_settings(conf).kombu.failover_strategy == "shuffle"
    assert notify_options.group(conf).driver == ["log"]


def test_the_msgbus_spelling_wins_over_the_oslo_one(tmp_path: pathlib.Path) -> None:
    conf = load(write(tmp_path, "[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = 7\n"
                                "[msgbus_rabbit]\nrabbit_qos_prefetch_count = 9\n"))
    assert kombu_options.read_settings(conf).amqp.prefetch == 9


def test_missing_consumer_retry_timeout_is_reply_missing_queue_timeout(
        tmp_path: pathlib.Path) -> None:
    conf = load(write(tmp_path, "[oslo_messaging_rabbit]\n"
                                "kombu_missing_consumer_retry_timeout = 12\n"))
    assert conf.reply_missing_queue_timeout == 12


def test_ignored_oslo_options_are_named_in_a_warning(tmp_path: pathlib.Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    conf = load(write(tmp_path, "[oslo_messaging_rabbit]\nkombu_compression = gzip\n"
                                "kombu_reconnect_delay = 1.0\nconn_pool_ttl = 5\n"
                                "kombu_failover_strategy = shuffle\n"))
    with caplog.at_level(logging.WARNING):
        kombu_options.read_settings(conf)
        pika_options.PikaSettings.from_conf(conf)
    warned = [r.getMessage() for r in caplog.records if "no effect" in r.getMessage()]
    assert any("kombu_compression = gzip" in m for m in warned)
    assert any("conn_pool_ttl = 5" in m for m in warned)
    assert any("kombu_failover_strategy = shuffle" in m and "pika" in m for m in warned)
    assert not any("kombu_reconnect_delay" in m for m in warned)  # its default: nothing to say


def test_conffixture_registers_oslo_groups_before_any_transport() -> None:
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[], default_config_dirs=[])
    with ConfFixture(conf) as fixture:
        fixture.set("rabbit_quorum_queue", True, group="oslo_messaging_rabbit")
        fixture.set("heartbeat_timeout_threshold", 0, group="oslo_messaging_rabbit")
        fixture.set("kombu_failover_strategy", "shuffle", group="oslo_messaging_rabbit")
        fixture.set("driver", ["log"], group="oslo_messaging_notifications")
        fixture.set("notification_topics", ["old"])
        kombu = kombu_options.read_settings(conf)
        pika = pika_options.PikaSettings.from_conf(conf)
        assert kombu.amqp.quorum and pika.amqp.quorum
        assert kombu.amqp.heartbeat == 0 == pika.amqp.heartbeat
        assert kombu.kombu.failover_strategy == "shuffle"
        assert notify_options.group(conf).driver == ["log"]
        assert notify_options.group(conf).topics == ["old"]
        assert conf.oslo_messaging_rabbit.rabbit_quorum_queue is True
    assert kombu_options.read_settings(conf).amqp.quorum is False


def _conf(**values: Any) -> cfg.ConfigOpts:
    conf = options.new_conf()
    kombu_options.register_opts(conf)
    pika_options.register_opts(conf)
    for key, value in values.items():
        conf.set_override(key, value, group="msgbus_rabbit")
        conf.set_override(key, value, group="msgbus_pika")
    return conf


def _settings(**values: Any) -> AmqpSettings:
    return AmqpSettings.from_conf(_conf(**values), "msgbus_rabbit")


def _oslo_arguments(quorum: bool, ttl: int, stream: bool = False, ha: bool = False,
                    limits: tuple[int, int, int] = (0, 0, 0)) -> dict[str, Any]:
    return impl_rabbit._get_queue_arguments(ha, ttl, quorum, impl_rabbit.QuorumMemConfig(*limits),
                                            stream)


@pytest.mark.parametrize("quorum, transient, ha, limits", [
    (False, False, False, (0, 0, 0)),
    (True, False, False, (0, 0, 0)),
    (True, True, False, (5, 100, 0)),
    (True, True, False, (5, 100, 4096)),
    (False, False, True, (0, 0, 0)),
    (False, True, False, (3, 0, 0)),
])
def test_queue_arguments_are_oslo_messagings(quorum: bool, transient: bool, ha: bool,
                                             limits: tuple[int, int, int]) -> None:
    settings = _settings(rabbit_quorum_queue=quorum, rabbit_transient_quorum_queue=transient,
                         rabbit_ha_queues=ha, rabbit_quorum_delivery_limit=limits[0],
                         rabbit_quorum_max_memory_length=limits[1],
                         rabbit_quorum_max_memory_bytes=limits[2],
                         rabbit_transient_queues_ttl=600)
    topology = Topology(settings, "nova")
    # shared queues: oslo passes no TTL for topic and server queues and notification queues
    for spec in (topology.topic_queue(None, "t"), topology.server_queue(None, "t", "s"),
                 topology.notification_queue(None, "t.info")):
        assert dict(spec.arguments) == _oslo_arguments(quorum, 0, ha=ha, limits=limits)
        assert spec.durable == quorum and not spec.private
    for spec in (topology.reply_queue(), topology.fanout_queue("t")):
        assert dict(spec.arguments) == _oslo_arguments(transient, 600, ha=ha, limits=limits)
        assert spec.durable == transient and spec.auto_delete is False and spec.private
    fanout = topology.fanout_exchange("t")
    assert (fanout.durable, fanout.auto_delete) == (transient, True)


def test_stream_fanout_is_one_shared_stream_per_topic() -> None:
    settings = _settings(rabbit_stream_fanout=True, rabbit_transient_quorum_queue=True,
                         rabbit_qos_prefetch_count=10, rabbit_transient_queues_ttl=60)
    spec = Topology(settings, "nova").fanout_queue("compute")
    assert spec.name == "compute_fanout"
    assert dict(spec.arguments) == _oslo_arguments(True, 60, stream=True)
    assert spec.durable and not spec.private
    assert spec.consumer_arguments["x-stream-offset"] == "last"


def test_drivers_accept_stream_fanout_and_cancel_on_failover() -> None:
    """Both drivers apply them now (QueueSpec.private, consumer_arguments): no refusal
    (tests/interop/test_stream_fanout.py runs stream fanout on the broker)."""
    conf = _conf(rabbit_stream_fanout=True, rabbit_transient_quorum_queue=True,
                 rabbit_qos_prefetch_count=10, enable_cancel_on_failover=True)
    assert kombu_options.read_settings(conf).amqp.stream_fanout
    assert pika_options.PikaSettings.from_conf(conf).amqp.cancel_on_failover


def test_no_ttl_means_no_x_expires() -> None:
    spec = Topology(_settings(rabbit_transient_queues_ttl=0), "x").reply_queue()
    assert "x-expires" not in spec.arguments


@pytest.mark.parametrize("values, words", [
    ({"rabbit_quorum_queue": True, "rabbit_ha_queues": True}, "not both"),
    ({"rabbit_stream_fanout": True, "rabbit_transient_quorum_queue": True},
     "rabbit_qos_prefetch_count"),
    ({"rabbit_stream_fanout": True, "rabbit_qos_prefetch_count": 5},
     "rabbit_transient_quorum_queue"),
    ({"ssl_version": "TLSv9"}, "TLSv1_2"),
])
def test_combinations_oslo_refuses_are_refused_with_what_to_change(values: dict,
                                                                    words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        _settings(**values)


def test_queue_manager_names_are_stable_and_never_shared(tmp_path: pathlib.Path) -> None:
    namer = QueueNamer("node1", "nova-api", folder=str(tmp_path))
    names = [namer.next() for _ in range(3)]
    assert names == ["node1:nova-api:msgbus:1", "node1:nova-api:msgbus:2",
                     "node1:nova-api:msgbus:3"]
    # another process of the same service (same process group) continues the count
    assert QueueNamer("node1", "nova-api", folder=str(tmp_path)).next() == \
        "node1:nova-api:msgbus:4"
    processname = f"test-{uuid.uuid4().hex[:8]}"
    settings = _settings(use_queue_manager=True, hostname="h", processname=processname)
    try:
        reply = Topology(settings, "x").reply_queue()
    finally:
        pathlib.Path(QueueNamer("h", processname).path).unlink(missing_ok=True)
    assert reply.name == f"reply_h:{processname}:msgbus:1" and not reply.private


@pytest.mark.parametrize("name, version", [("", None), ("SSLv23", None),
                                           ("TLSv1_2", "TLSv1_2"), ("tlsv1_3", "TLSv1_3")])
def test_ssl_version_names_are_oslos(name: str, version: str | None) -> None:
    pinned = tls_version(name)
    assert (pinned.name if pinned else None) == version


def test_ping_endpoint_added_when_enabled(caplog: pytest.LogCaptureFixture) -> None:
    conf = options.new_conf()
    assert with_ping_endpoint(conf, ["a"]) == ["a"]
    conf.set_override("rpc_ping_enabled", True)
    endpoints = with_ping_endpoint(conf, ["a"])
    assert endpoints[0] == "a" and isinstance(endpoints[1], PingEndpoint)
    assert endpoints[1].oslo_rpc_server_ping({}) == "pong"

    class Own:
        def oslo_rpc_server_ping(self, ctxt: Any) -> str:
            return "mine"

    own = Own()
    with caplog.at_level(logging.WARNING):
        assert with_ping_endpoint(conf, [own]) == [own]
    assert "reserved" in caplog.text


def test_oslo_metrics_group_is_registered_and_metrics_enabled_is_warned_about(caplog) -> None:
    # oslo.messaging's functional tests set [oslo_messaging_metrics] through the fixture
    from msgbus import get_rpc_transport
    from msgbus.conffixture import ConfFixture
    fixture = ConfFixture()
    fixture.setUp()
    try:
        conf = fixture.conf
        assert conf.oslo_messaging_metrics.metrics_enabled is False
        fixture.set("metrics_enabled", True, group="oslo_messaging_metrics")
        with caplog.at_level("WARNING", logger="msgbus.options"):
            get_rpc_transport(conf, url="fake://").cleanup()
        assert any("metrics_enabled" in r.getMessage() for r in caplog.records)
    finally:
        fixture.cleanUp()


def test_core_options_oslo_messaging_registered_first_are_kept() -> None:
    # oslo.messaging registers rpc_ping_enabled on cfg.CONF when it builds an RPC dispatcher;
    # a process running both libraries on one ConfigOpts must still get msgbus's options.
    from oslo_config import cfg

    from msgbus import options
    from oslo_messaging.rpc import dispatcher as oslo_dispatcher
    conf = cfg.ConfigOpts()
    conf.register_opts(oslo_dispatcher._dispatcher_opts)
    options.register_opts(conf)
    conf([], default_config_files=[], default_config_dirs=[])
    assert conf.rpc_ping_enabled is False
    assert conf.rpc_response_timeout == 60
