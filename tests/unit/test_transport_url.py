"""TransportURL parsing: hosts, credentials, virtual hosts, query options, bad input."""

from typing import Any

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


def test_str_is_the_url_and_repr_masks_the_password() -> None:
    url = TransportURL.parse(None, "rabbit://user:s3cret@host:5672/")
    assert str(url) == "rabbit://user:s3cret@host:5672/"
    assert "s3cret" not in repr(url)
    assert "s3cret" not in repr(url.hosts[0])
    assert "s3cret" not in url.render() and "s3cret" not in url.masked
    assert "s3cret" in url.render(with_password=True)


@pytest.mark.parametrize("bad, words", [
    ("rabbit//host", "expected 'scheme://"),
    ("://host", "expected 'scheme://"),
    ("1abc://host", "expected 'scheme://"),
    ("rabbit:host:5672", "expected 'rabbit://' or 'rabbit:/'"),
    ("rabbit://host:notaport/", "invalid port"),
    ("rabbit://host:70000/", "invalid port"),
    ("rabbit://host:/", "invalid port"),
    ("rabbit://[::1/", "unclosed '['"),
    ("rabbit://h/?novalue", "invalid query string"),
])
def test_bad_urls_say_what_is_wrong(bad: str, words: str) -> None:
    with pytest.raises(msgbus.InvalidTransportURL, match=words.replace("[", r"\[")):
        TransportURL.parse(None, bad)


@pytest.mark.parametrize("bad", [
    "rabbit://user:topsecret@host:badport/",
    "rabbit://user:top/secret@host:badport/",
    "rabbit://u1:topsecret@h1,u2:topsecret@h2:0/",
    "rabbit:user:topsecret@host",
])
def test_bad_url_error_hides_password(bad: str) -> None:
    with pytest.raises(msgbus.InvalidTransportURL) as info:
        TransportURL.parse(None, bad)
    assert "secret" not in str(info.value) and "secret" not in info.value.url


def test_url_from_conf_option() -> None:
    from msgbus import options
    conf = options.new_conf()
    conf.set_override("transport_url", "fake://conf-host/")
    assert TransportURL.parse(conf).hosts == [TransportHost("conf-host")]


def test_no_url_at_all_is_a_clear_error() -> None:
    with pytest.raises(msgbus.InvalidTransportURL, match="transport_url"):
        msgbus.get_rpc_transport()


# -- side by side with oslo.messaging's TransportURL ----------------------------------------

URLS = [
    "fake:", "fake:/", "fake://", "fake:///", "foo:////", "kombu+memory:////",
    "rabbit://h", "rabbit://h/", "RABBIT://H/", "rabbit://h#fragment", "rabbit://h?a=1#f",
    "rabbit://h/vh?", "rabbit://u:p@h1,h2:5673/v?a=1&a=2&b=", "rabbit://u%40x:p%2F%3A@h//",
    "rabbit://us%3Aer:p%40ss%20w%2Cord%2F@h/", "rabbit://u:%C3%A9t%C3%A9@h/",
    "rabbit://[::1]:5672,::1/", "rabbit://[2001:db8::1]/", "rabbit://:5672/", "rabbit://u:p@/",
    "rabbit://h1,,h2/", "rabbit://h/a%20b/c", "rabbit://h/%2F", "rabbit://h/?x=%20y+z&y=%26",
    "rabbit://u:@h/", "rabbit://:p@h/", "rabbit://u@h/", "rabbit:///vhost",
    "rabbit://u1:p1@h1:1,u2:p2@h2:2/vh?heartbeat=10&ssl=true",
    "pika://guest:guest@127.0.0.1:5672/",
]

#: URLs that str() gives back character for character.
CANONICAL = [
    "fake://", "fake:///", "foo:////", "rabbit://h", "rabbit://h/", "rabbit://u%40x:p%2F%3A@h//",
    "rabbit://u:p@h1,h2:5673/v?a=1%2C2", "rabbit://u1:p1@h1:1,u2:p2@h2:2/vh?heartbeat=10&ssl=true",
    "rabbit://[::1]:5672/", "rabbit://h/a%20b/c", "rabbit://us%3Aer:p%40ss%20w%2Cord%2F@h/",
    "rabbit://:p@h/", "rabbit://u:@h/", "rabbit:///vhost", "rabbit://h/?x=+y+z&y=%26",
]


def _oslo_parse(url: str) -> Any:
    import oslo_messaging
    from oslo_config import cfg
    return oslo_messaging.TransportURL.parse(cfg.ConfigOpts(), url)


def _fields(url: Any, *, inherit: bool = False) -> tuple:
    """What both libraries' URLs hold; ``inherit`` applies msgbus's credential inheritance."""
    hosts = [[h.hostname or None, h.port, h.username, h.password] for h in url.hosts]
    if inherit:
        for host in hosts[1:]:
            if host[2] is None and host[3] is None:
                host[2:] = hosts[0][2:]
    return (url.transport, url.virtual_host, hosts, dict(url.query))


@pytest.mark.parametrize("text", URLS)
def test_parses_as_oslo_messaging_does(text: str) -> None:
    assert _fields(TransportURL.parse(None, text)) == _fields(_oslo_parse(text), inherit=True)


@pytest.mark.parametrize("text", URLS)
def test_str_round_trips_and_both_libraries_read_it_alike(text: str) -> None:
    url = TransportURL.parse(None, text)
    rendered = str(url)
    assert TransportURL.parse(None, rendered) == url
    # oslo.messaging reads our rendering as it reads the original...
    assert _fields(_oslo_parse(rendered)) == _fields(_oslo_parse(text))
    # ...and we read oslo's rendering as the original (oslo writes a '/' after the hosts even
    # when the URL had no path: virtual host None becomes "")
    again = TransportURL.parse(None, str(_oslo_parse(text)))
    assert _fields(again)[0] == _fields(url)[0] and _fields(again)[2:] == _fields(url)[2:]
    assert again.virtual_host == (url.virtual_host or "")


@pytest.mark.parametrize("text", CANONICAL)
def test_str_gives_a_canonical_url_back_unchanged(text: str) -> None:
    assert str(TransportURL.parse(None, text)) == text


@pytest.mark.parametrize("text", [u for u in URLS if "?" not in u or u.endswith("?")])
def test_str_matches_oslo_messaging_when_the_url_has_a_path(text: str) -> None:
    url = TransportURL.parse(None, text)
    oslo = str(_oslo_parse(text))
    if url.virtual_host is None:
        oslo = oslo[:-1] if oslo.endswith("/") else oslo  # msgbus keeps "no path" as it was
    if any(h.hostname and "%" in h.hostname for h in url.hosts):
        return
    assert str(url) == oslo


def test_the_short_forms_of_oslo_s_docs_make_fake_transports() -> None:
    for text in ("fake:/", "fake:", "fake://", "fake:///"):
        transport = msgbus.get_rpc_transport(url=text)
        try:
            assert transport.url.transport == "fake"
        finally:
            transport.cleanup()


def test_virtual_host_slash_renders_as_a_double_slash() -> None:
    url = TransportURL(None, "rabbit", "/", [TransportHost("h", 5672, "u", "p w")])
    assert str(url) == "rabbit://u:p%20w@h:5672//"
    assert TransportURL.parse(None, str(url)) == url


def test_edited_urls_keep_their_passwords() -> None:
    """The OpenStack pattern: parse, change a host or the vhost, render, connect."""
    url = TransportURL.parse(None, "rabbit://nova:s%3Acret@cell0:5672/nova_cell0")
    url.virtual_host = "nova_cell1"
    url.hosts[0].hostname = "cell1"
    assert str(url) == "rabbit://nova:s%3Acret@cell1:5672/nova_cell1"
    assert TransportURL.parse(None, str(url)).hosts[0].password == "s:cret"


def test_percent_encoded_host_names_are_decoded_and_encoded_again() -> None:
    url = TransportURL.parse(None, "rabbit://[fe80::1%25eth0]:5672/")
    assert url.hosts[0].hostname == "fe80::1%eth0"
    assert str(url) == "rabbit://[fe80::1%25eth0]:5672/"


def test_urls_with_other_options_are_not_equal() -> None:
    assert TransportURL.parse(None, "rabbit://h/?ssl=1") != TransportURL.parse(None, "rabbit://h/")
