"""The driver as a plugin: entry points, its option group, URL query options over the config."""

from __future__ import annotations

import importlib.metadata
import subprocess

from oslo_config import cfg

import msgbus
from msgbus.driver.amqp import amqp_opts
from msgbus.driver.loader import load_driver_class

from .helpers import RABBIT_URL, Closer, make_conf


def test_registered_as_rabbit_and_kombu() -> None:
    names = {ep.name: ep for ep in importlib.metadata.entry_points(group="msgbus.drivers")}
    assert names["rabbit"].value == names["kombu"].value == "msgbus_kombu.driver:KombuDriver"
    assert names["rabbit"].dist.metadata["Name"] == "msgbus-kombu"
    assert load_driver_class("rabbit") is load_driver_class("kombu")


def test_kombu_scheme_works(closer: Closer) -> None:
    transport = closer.transport(url=RABBIT_URL.replace("rabbit://", "kombu://"))
    assert type(transport.driver).__name__ == "KombuDriver"


def test_options_group_and_generator() -> None:
    from msgbus_kombu.options import GROUP, list_opts
    [(group, opts)] = list_opts()
    assert group == GROUP == "msgbus_rabbit"
    names = {o.dest for o in opts}
    assert {o.dest for o in amqp_opts} <= names
    assert {"listener_drain_timeout", "heartbeat_rate", "confirm_timeout"} <= names
    assert "reply_missing_queue_timeout" not in names  # a core option now ([DEFAULT])
    assert all(o.help for o in opts)
    out = subprocess.run(["oslo-config-generator", "--namespace", "msgbus_kombu"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "[msgbus_rabbit]" in out and "#listener_drain_timeout = 30.0" in out


def test_url_query_wins_over_configuration() -> None:
    conf = make_conf(heartbeat_timeout_threshold=30, confirm_timeout=5.0,
                     rpc_conn_pool_size=4)
    url = RABBIT_URL + "?heartbeat_timeout_threshold=7&confirm_timeout=1.5"
    transport = msgbus.get_rpc_transport(conf, url=url)
    try:
        settings = transport.driver.settings
        assert settings.amqp.heartbeat == 7
        assert settings.kombu.confirm_timeout == 1.5
        assert settings.amqp.pool_size == 4  # from the configuration
    finally:
        transport.cleanup()


def test_options_registered_on_the_users_conf() -> None:
    conf = make_conf()
    transport = msgbus.get_rpc_transport(conf, url=RABBIT_URL)
    try:
        assert isinstance(conf.msgbus_rabbit, cfg.ConfigOpts.GroupAttr)
        assert conf.msgbus_rabbit.rabbit_transient_queues_ttl == 1800
    finally:
        transport.cleanup()
