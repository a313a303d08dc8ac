"""oslo.service's launcher runs a msgbus RPC server as it runs oslo.messaging's.

OpenStack services hand their RPC server to ``oslo_service.service.launch`` (oslo.messaging's
``MessageHandlingServer`` is a ``ServiceBase``). The server is launched in its own process (the
launcher installs signal handlers, as in a service), answers a call from this process on the
shared broker, and stops when the launcher gets SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from oslo_config import cfg

import msgbus

from .drivers import environment

LAUNCHED = str(Path(__file__).with_name("launched_server.py"))


def _call_while_alive(client: msgbus.RPCClient, proc: subprocess.Popen[str]) -> int:
    """``getpid`` on the launched server; a call made before its queue exists is sent again
    until it does, within the call's timeout. Ends at once if the process died (60 s bound)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return client.call({}, "getpid")
        except msgbus.MessagingTimeout:
            if proc.poll() is not None or time.monotonic() > deadline:
                output = proc.communicate(timeout=10)[0] if proc.poll() is not None else ""
                raise AssertionError(f"the launched server did not answer (exit status "
                                     f"{proc.poll()}):\n{output}") from None


@pytest.mark.parametrize("driver", ["rabbit", "pika"])
def test_launcher_runs_and_stops_a_msgbus_rpc_server(driver: str, oslo_vhost: str) -> None:
    url = environment(driver, oslo_vhost)["TRANSPORT_URL"]
    topic = f"msgbus-launcher-{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen([sys.executable, LAUNCHED, url, topic], text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    transport = msgbus.get_rpc_transport(cfg.ConfigOpts(), url=url)
    try:
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic, server="launched"),
                                       timeout=5)
        assert _call_while_alive(client, proc) == proc.pid
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        transport.cleanup()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert "server running: False" in output, output
