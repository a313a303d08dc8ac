"""A msgbus RPC server run by oslo.service's launcher, as an OpenStack service runs oslo's.

``python launched_server.py URL TOPIC``: builds the server, hands it to
``oslo_service.service.launch`` and waits on the launcher until a signal stops it; then prints
whether the server stopped. The test in ``test_oslo_service_launcher.py`` drives it.

oslo.service's default backend is eventlet, and a service using it calls
``eventlet.monkey_patch()`` first (without it, the launcher's signal handling waits for the
hub's next wake-up), so this process does too, before anything else is imported.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402 - after monkey_patch, as in an eventlet service
import sys  # noqa: E402

from oslo_config import cfg  # noqa: E402

import msgbus  # noqa: E402


class Endpoint:
    """Answers with the process id, so the caller knows the launched process served it."""

    def getpid(self, ctxt: dict) -> int:
        return os.getpid()


def main(url: str, topic: str) -> int:
    from oslo_service import service

    conf = cfg.ConfigOpts()
    conf([], project="msgbus-launcher-test")
    transport = msgbus.get_rpc_transport(conf, url=url)
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic=topic, server="launched"),
                                   [Endpoint()])
    launcher = service.launch(conf, server)
    status = launcher.wait()
    print(f"launcher returned {status}; server running: {server.running}", flush=True)
    transport.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
