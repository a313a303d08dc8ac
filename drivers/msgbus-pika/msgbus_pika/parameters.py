"""From a transport URL and settings to pika's ConnectionParameters, one broker host at a time.

The TLS context is built once per transport (so a bad CA file, TLS version or login method
fails when the transport is made, not on the first reconnect) and shared by every connection of
the transport.
"""

from __future__ import annotations

import os
import ssl

import pika
from pika.credentials import ExternalCredentials

from msgbus.driver.amqp import default_port, tls_version
from msgbus.exceptions import ConfigurationError
from msgbus.transport_url import TransportHost, TransportURL
from msgbus_pika.options import PikaSettings

DEFAULT_USER = "guest"


def broker_hosts(url: TransportURL) -> list[TransportHost]:
    """The URL's hosts; ``pika://`` alone means the local broker with the default account."""
    hosts = [h for h in url.hosts if h.hostname]
    if hosts:
        return hosts
    first = url.hosts[0] if url.hosts else TransportHost()
    return [TransportHost("localhost", first.port, first.username, first.password)]


def host_port(settings: PikaSettings, host: TransportHost) -> int:
    """The port to connect to: the URL's, else 5672 (over TLS too, as oslo.messaging)."""
    return host.port or default_port(settings.amqp.ssl)


def address(settings: PikaSettings, host: TransportHost) -> str:
    """``user:****@host:port`` for log lines and errors, with the port actually used (never
    the password)."""
    return TransportHost(host.hostname or "localhost", host_port(settings, host), host.username,
                         host.password).netloc()


def virtual_host(url: TransportURL) -> str:
    """The URL's path is the vhost; none or empty means RabbitMQ's default ``/``."""
    return url.virtual_host or "/"


def check_login_method(settings: PikaSettings) -> None:
    """Refuse a ``rabbit_login_method`` this driver cannot use, saying what to use instead."""
    method = settings.amqp.login_method
    if method == "RABBIT-CR-DEMO":
        raise ConfigurationError("rabbit_login_method RABBIT-CR-DEMO (a RabbitMQ demo "
                                 "mechanism) is not supported by the pika driver; use PLAIN, "
                                 "AMQPLAIN or EXTERNAL")
    if method == "EXTERNAL" and not (settings.amqp.ssl and settings.amqp.ssl_cert_file):
        raise ConfigurationError("rabbit_login_method EXTERNAL logs in with the TLS client "
                                 "certificate: set ssl = true and ssl_cert_file")


def credentials(settings: PikaSettings,
                host: TransportHost) -> pika.PlainCredentials | ExternalCredentials:
    """The login of ``host``: the client certificate for EXTERNAL, else user and password
    (AMQPLAIN, oslo.messaging's default, logs in the same account as PLAIN, which pika
    speaks)."""
    if settings.amqp.login_method == "EXTERNAL":
        return ExternalCredentials()
    return pika.PlainCredentials(host.username if host.username is not None else DEFAULT_USER,
                                 host.password if host.password is not None else DEFAULT_USER)


def tls_context(settings: PikaSettings) -> ssl.SSLContext | None:
    """The TLS context for the transport, or None when TLS is off; checks the login method
    too (both are settled once per transport)."""
    check_login_method(settings)
    amqp = settings.amqp
    if not amqp.ssl:
        return None
    for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
        path = getattr(amqp, name)
        if path and not os.path.isfile(path):
            raise ConfigurationError(f"option {name}: no such file {path!r}")
    try:
        context = ssl.create_default_context(cafile=amqp.ssl_ca_file or None)
        pinned = tls_version(amqp.ssl_version)
        if pinned is not None:  # oslo's ssl_version names one protocol version
            context.minimum_version = context.maximum_version = pinned
        if not amqp.ssl_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if amqp.ssl_cert_file:
            context.load_cert_chain(amqp.ssl_cert_file, amqp.ssl_key_file or None)
        elif amqp.ssl_key_file:
            raise ConfigurationError("option ssl_key_file needs ssl_cert_file")
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(f"cannot set up TLS: {exc}") from exc
    return context


def connection_parameters(settings: PikaSettings, host: TransportHost, vhost: str,
                          context: ssl.SSLContext | None,
                          name: str) -> pika.ConnectionParameters:
    """pika's parameters for one connection attempt to ``host``; ``name`` shows in the broker."""
    amqp = settings.amqp
    hostname = host.hostname or "localhost"
    port = host_port(settings, host)
    ssl_options = pika.SSLOptions(context, hostname) if context else None
    return pika.ConnectionParameters(
        host=hostname, port=port, virtual_host=vhost, credentials=credentials(settings, host),
        heartbeat=amqp.heartbeat,
        blocked_connection_timeout=settings.blocked_connection_timeout or None,
        socket_timeout=amqp.connect_timeout,
        stack_timeout=amqp.connect_timeout * 2,
        connection_attempts=1, retry_delay=0,
        ssl_options=ssl_options,
        client_properties={"connection_name": name, "product": "msgbus-pika"},
    )
