"""msgbus.driver.url_options: any driver's options, overridable by URL query options."""

import logging

import pytest
from oslo_config import cfg

from msgbus.driver.url_options import coerce_query_value, read_options
from msgbus.exceptions import ConfigurationError

OPTS = [
    cfg.IntOpt("window", default=8, min=1),
    cfg.FloatOpt("timeout", default=2.5),
    cfg.BoolOpt("tls", default=False),
    cfg.StrOpt("mode", default="fast", choices=["fast", "safe"]),
]


def _conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[], default_config_dirs=[])
    return conf


def test_config_values_with_the_query_laid_over_them() -> None:
    conf = _conf()
    conf.register_opts(OPTS, group="mine")
    conf.set_override("window", 16, group="mine")
    values = read_options(conf, "mine", OPTS, {"timeout": "0.5", "tls": "true"})
    assert values == {"window": 16, "timeout": 0.5, "tls": True, "mode": "fast"}


@pytest.mark.parametrize("key, text, expected", [
    ("window", "0", "an integer >= 1"), ("window", "big", "an integer"),
    ("timeout", "soon", "a number"), ("tls", "maybe", "true or false"),
    ("mode", "turbo", "one of fast, safe")])
def test_bad_query_values_say_what_is_expected(key: str, text: str, expected: str) -> None:
    opt = next(o for o in OPTS if o.dest == key)
    with pytest.raises(ConfigurationError, match=f"{key!r} of mine://h/: expected {expected}"):
        coerce_query_value(opt, text, "mine://h/")


def test_unknown_query_names_are_logged_once_by_name(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="msgbus.driver.url_options"):
        read_options(_conf(), "mine", OPTS, {"windw": "3", "vhost_hint": "x", "ssl": "1"},
                     url_text="mine://h/", known_elsewhere=["ssl"])
    (record,) = caplog.records
    assert "'vhost_hint', 'windw'" in record.getMessage()
    assert "'ssl'" not in record.getMessage()


@pytest.mark.parametrize("query, expected", [
    ({"rpc_conn_pool_size": "0"}, "'rpc_conn_pool_size' of the transport URL: expected an "
                                  "integer >= 1"),
    ({"amqp_durable_queues": "maybe"}, "'amqp_durable_queues' of the transport URL: expected "
                                       "true or false"),
    ({"rabbit_retry_interval": "soon"}, "expected a number >= 0")])
def test_amqp_drivers_convert_query_values_by_the_same_rule(query: dict, expected: str) -> None:
    """The AMQP drivers' shared settings read URL query values through coerce_query_value: an
    out-of-range value fails as it would in the configuration file, naming what is expected."""
    from msgbus.driver.amqp import AmqpSettings

    with pytest.raises(ConfigurationError, match=expected):
        AmqpSettings.from_conf(_conf(), "amqp_test", query)
