"""TransportURL parsing: hosts, credentials, virtual hosts, query options, bad input."""

import pytest

import msgbus
from msgbus.transport_url import TransportHost, TransportURL


def test_full_url_with_several_hosts() -> None:
    url = TransportURL.parse(None, "rabbit://u1:p%40ss@h1:5672,u2:p2@h2:5673/my%2Fvhost"
                                   "?heartbeat_timeout_threshold=10")
    assert url.transport == "rabbit"
    assert url.virtual_host == "my/vhost"
    assert url.hosts == [TransportHost("h1", 5672, "u1", "p@ss"),
                         TransportHost("h2", 5673, "u2", "p2")]
    assert url.query == {"heartbeat_timeout_threshold": "10"}


def test_hosts_without_credentials_inherit_the_first() -> None:
    url = TransportURL.parse(None, "rabbit://u:p@h1,h2:5673/")
    assert url.hosts[1] == TransportHost("h2", 5673, "u", "p")
    assert url.virtual_host == ""


def test_ipv6_and_minimal_urls() -> None:
    assert TransportURL.parse(None, "rabbit://[::1]:5672/").hosts == [
        TransportHost("::1", 5672)]
    fake = TransportURL.parse(None, "fake://")
    assert fake.transport == "fake" and fake.hosts == [] and fake.virtual_host is None


def test_password_never_shown() -> None:
    url = TransportURL.parse(None, "rabbit://user:s3cret@host:5672/")
    assert "s3cret" not in str(url)
    assert "s3cret" not in repr(url)
    assert "s3cret" not in repr(url.hosts[0])
    assert "s3cret" in url.render(with_password=True)


@pytest.mark.parametrize("bad, words", [
    ("rabbit//host", "expected 'scheme://"),
    ("://host", "invalid scheme"),
    ("rabbit://host:notaport/", "invalid port"),
    ("rabbit://host:70000/", "invalid port"),
    ("rabbit://[::1/", "unclosed '['"),
    ("rabbit://user:pw@/", "missing host name"),
])
def test_bad_urls_say_what_is_wrong(bad: str, words: str) -> None:
    with pytest.raises(msgbus.InvalidTransportURL, match=words.replace("[", r"\[")):
        TransportURL.parse(None, bad)


def test_bad_url_error_hides_password() -> None:
    with pytest.raises(msgbus.InvalidTransportURL) as info:
        TransportURL.parse(None, "rabbit://user:topsecret@host:badport/")
    assert "topsecret" not in str(info.value)


def test_url_from_conf_option() -> None:
    from msgbus import options
    conf = options.new_conf()
    conf.set_override("transport_url", "fake://conf-host/")
    assert TransportURL.parse(conf).hosts == [TransportHost("conf-host")]


def test_no_url_at_all_is_a_clear_error() -> None:
    with pytest.raises(msgbus.InvalidTransportURL, match="transport_url"):
        msgbus.get_rpc_transport()
