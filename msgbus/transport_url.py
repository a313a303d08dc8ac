"""Parsing and rendering of transport URLs: ``scheme://user:pass@host:port,host2/vhost?opt=v``."""

from __future__ import annotations

from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, quote, unquote

from msgbus.exceptions import InvalidTransportURL

_MASK = "****"


class TransportHost:
    """One broker address of a transport URL, with its credentials."""

    __slots__ = ("hostname", "port", "username", "password")

    def __init__(self, hostname: str | None = None, port: int | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.hostname = hostname
        self.port = port
        self.username = username
        self.password = password

    def _fields(self) -> tuple:
        return (self.hostname, self.port, self.username, self.password)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransportHost) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def netloc(self, *, with_password: bool = False) -> str:
        """Render as ``user:pass@host:port``; the password is masked unless asked for."""
        out = ""
        if self.username is not None:
            out = quote(self.username, safe="")
            if self.password is not None:
                out += ":" + (quote(self.password, safe="") if with_password else _MASK)
            out += "@"
        host = self.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        out += host
        if self.port is not None:
            out += f":{self.port}"
        return out

    def __repr__(self) -> str:
        return f"<TransportHost {self.netloc()}>"


class TransportURL:
    """A parsed transport URL; the scheme picks the driver.

    ``str()`` and ``repr()`` mask passwords so that a URL can be logged; drivers read the hosts.
    """

    def __init__(self, conf: Any = None, transport: str | None = None,
                 virtual_host: str | None = None, hosts: Iterable[TransportHost] | None = None,
                 query: Mapping[str, str] | None = None) -> None:
        self.conf = conf
        self.transport = transport
        self.virtual_host = virtual_host
        self.hosts = list(hosts or [])
        self.query = dict(query or {})

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TransportURL) and
                (self.transport, self.virtual_host, self.hosts, self.query) ==
                (other.transport, other.virtual_host, other.hosts, other.query))

    def __hash__(self) -> int:
        return hash((self.transport, self.virtual_host, tuple(self.hosts),
                     tuple(sorted(self.query.items()))))

    def render(self, *, with_password: bool = False) -> str:
        """The URL as text; passwords stay masked unless ``with_password``."""
        out = f"{self.transport}://"
        out += ",".join(h.netloc(with_password=with_password) for h in self.hosts)
        if self.virtual_host is not None:
            out += "/" + quote(self.virtual_host, safe="")
        if self.query:
            out += "?" + "&".join(f"{quote(k)}={quote(str(v))}" for k, v in self.query.items())
        return out

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"<TransportURL {self.render()}>"

    @classmethod
    def parse(cls, conf: Any = None, url: "str | TransportURL | None" = None) -> "TransportURL":
        """Parse ``url``, or the ``transport_url`` option of ``conf`` when no URL is given."""
        if isinstance(url, TransportURL):
            return url
        if url is None and conf is not None:
            url = conf.transport_url
        if not url:
            raise InvalidTransportURL(str(url), "no transport URL given: pass url= or set the "
                                      "transport_url option (for example 'fake://')")
        if not isinstance(url, str):
            raise InvalidTransportURL(repr(url), f"a transport URL must be a string, not "
                                      f"{type(url).__name__}")
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise InvalidTransportURL(_masked(url), f"invalid transport URL {_masked(url)!r}: "
                                      "expected 'scheme://[user:pass@]host[:port][/vhost]'")
        if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
            raise InvalidTransportURL(_masked(url), f"invalid scheme {scheme!r} in transport URL")
        rest, _, fragment = rest.partition("#")
        rest, qsep, query_text = rest.partition("?")
        netlocs, slash, path = rest.partition("/")
        virtual_host = unquote(path) if slash else None
        query: dict[str, str] = {}
        if qsep:
            try:
                for key, value in parse_qsl(query_text, keep_blank_values=True,
                                            strict_parsing=bool(query_text)):
                    query[key] = value
            except ValueError:
                raise InvalidTransportURL(_masked(url), f"invalid query string {query_text!r} "
                                          "in transport URL") from None
        hosts = [_parse_host(url, part) for part in netlocs.split(",")] if netlocs else []
        # A host without credentials inherits the first host's (as oslo.messaging does).
        if hosts:
            first = hosts[0]
            for host in hosts[1:]:
                if host.username is None:
                    host.username, host.password = first.username, first.password
        return cls(conf, scheme.lower(), virtual_host, hosts, query)


def _masked(url: str) -> str:
    """The URL text with anything between ':' and '@' in credentials hidden."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    parts = []
    for piece in rest.split(","):
        creds, at, host = piece.rpartition("@")
        if at and ":" in creds:
            piece = creds.split(":", 1)[0] + ":" + _MASK + "@" + host
        parts.append(piece)
    return scheme + sep + ",".join(parts)


def _parse_host(url: str, text: str) -> TransportHost:
    creds, at, hostport = text.rpartition("@")
    username = password = None
    if at:
        user, colon, pw = creds.partition(":")
        username = unquote(user)
        password = unquote(pw) if colon else None
    if not hostport:
        if at:
            raise InvalidTransportURL(_masked(url), f"missing host name after credentials in "
                                      f"{_masked(url)!r}")
        return TransportHost(None, None, username, password)
    port_text = None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise InvalidTransportURL(_masked(url), f"unclosed '[' in IPv6 host {hostport!r}")
        hostname = hostport[1:end]
        tail = hostport[end + 1:]
        if tail:
            if not tail.startswith(":"):
                raise InvalidTransportURL(_masked(url), f"unexpected text after IPv6 host "
                                          f"{hostport!r}")
            port_text = tail[1:]
    else:
        hostname, colon, port_text = hostport.partition(":")
        if not colon:
            port_text = None
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidTransportURL(_masked(url), f"invalid port {port_text!r} for host "
                                      f"{hostname!r}: expected a number from 1 to 65535")
        port = int(port_text)
    return TransportHost(unquote(hostname) or None, port, username, password)
