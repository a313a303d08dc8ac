"""Transport URLs: ``scheme://user:pass@host:port,host2/vhost?opt=v``, parsed and rendered as
oslo.messaging does.

``str(url)`` is the URL itself, password included, and parses back to an equal URL (percent-
encoded credentials, several hosts, query options, ``//`` for the virtual host ``/``); ``repr()``
and :meth:`TransportURL.render` mask passwords, for logs and error messages. oslo.messaging's
short forms parse as it parses them: ``fake:``, ``fake:/``, ``fake://``, ``foo:////`` (virtual
host ``/``), a URL with no host.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, quote, unquote, urlencode

from msgbus.exceptions import InvalidTransportURL

__all__ = ["TransportHost", "TransportURL"]

_MASK = "****"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")


class TransportHost:
    """One broker address of a transport URL, with its credentials."""

    __slots__ = ("hostname", "port", "username", "password", "_inherited")

    def __init__(self, hostname: str | None = None, port: int | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.hostname = hostname
        self.port = port
        self.username = username
        self.password = password
        # credentials copied from the URL's first host when parsed: rendered only by that host
        self._inherited = False

    def _fields(self) -> tuple:
        return (self.hostname, self.port, self.username, self.password)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransportHost) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def netloc(self, *, with_password: bool = False, credentials: bool = True) -> str:
        """Render as ``user:pass@host:port``; the password is masked unless asked for."""
        out = ""
        if credentials and (self.username is not None or self.password is not None):
            if self.username is not None:
                out = quote(self.username, safe="")
            if self.password is not None:
                out += ":" + (quote(self.password, safe="") if with_password else _MASK)
            out += "@"
        host = quote(self.hostname or "", safe=":")
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

    ``str()`` is the URL (password included: it is what you connect with); ``repr()`` and
    ``render()`` mask the password: use them in logs and messages.
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
        """The URL as text; passwords are masked unless ``with_password``."""
        out = f"{self.transport}://"
        first = self.hosts[0] if self.hosts else None
        out += ",".join(h.netloc(with_password=with_password,
                                 credentials=not (h._inherited and first is not None and
                                                  (h.username, h.password) ==
                                                  (first.username, first.password)))
                        for h in self.hosts)
        if self.virtual_host is not None:
            out += "/" + quote(self.virtual_host)  # '/' stays: vhost "/" renders as "//"
        if self.query:
            out += "?" + urlencode(self.query, doseq=True)
        return out

    @property
    def masked(self) -> str:
        """The URL with its passwords masked (for logs and error messages)."""
        return self.render()

    def __str__(self) -> str:
        return self.render(with_password=True)

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
        scheme, colon, rest = url.partition(":")
        if not colon or not _SCHEME.match(scheme):
            raise InvalidTransportURL(_masked(url), f"invalid transport URL {_masked(url)!r}: "
                                      "expected 'scheme://[user:pass@]host[:port][/vhost]'")
        rest = rest.partition("#")[0]
        rest, qsep, query_text = rest.partition("?")
        netlocs = ""
        if rest.startswith("//"):
            netlocs, slash, path = rest[2:].partition("/")
            path = slash + path
        else:
            path = rest
        if path and not path.startswith("/"):
            raise InvalidTransportURL(_masked(url), f"invalid transport URL {_masked(url)!r}: "
                                      f"expected '{scheme}://' or '{scheme}:/' after the "
                                      "scheme")
        virtual_host = unquote(path[1:]) if path else None
        query: dict[str, str] = {}
        if qsep:
            try:
                pairs = parse_qsl(query_text, strict_parsing=bool(query_text))
            except ValueError:
                raise InvalidTransportURL(_masked(url), f"invalid query string {query_text!r} "
                                          "in transport URL") from None
            for key, value in pairs:  # a repeated option: its values joined by ',' (as oslo)
                query[key] = f"{query[key]},{value}" if key in query else value
        hosts = [_parse_host(url, part) for part in netlocs.split(",") if part]
        # A host without credentials inherits the first host's (the AMQP drivers connect to
        # every host with them); they are not rendered again, so str() gives the URL back.
        if hosts:
            first = hosts[0]
            for host in hosts[1:]:
                if host.username is None and host.password is None:
                    host.username, host.password = first.username, first.password
                    host._inherited = first.username is not None or first.password is not None
        return cls(conf, scheme.lower(), virtual_host, hosts, query)


def _masked(url: str) -> str:
    """The URL text for an error message: credentials hidden whenever a password may be there
    (the text may be malformed: no attempt to tell credentials from hosts)."""
    scheme, sep, rest = url.partition(":")
    creds, at, tail = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{scheme}:{'//' if rest.startswith('//') else ''}{_MASK}@{tail}"


def _parse_host(url: str, text: str) -> TransportHost:
    creds, at, hostport = text.rpartition("@")
    username = password = None
    if at:
        user, colon, pw = creds.partition(":")
        username = unquote(user)
        password = unquote(pw) if colon else None
    if not hostport:
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
    elif hostport.count(":") == 1:
        hostname, _, port_text = hostport.partition(":")
    else:  # no port, or an IPv6 address without brackets (and so without a port)
        hostname = hostport
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidTransportURL(_masked(url), f"invalid port {port_text!r} for host "
                                      f"{hostname!r}: expected a number from 1 to 65535")
        port = int(port_text)
    return TransportHost(unquote(hostname) or None, port, username, password)
