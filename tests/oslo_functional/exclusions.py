"""oslo.messaging functional tests that are not run on msgbus, each with its reason.

Only tests that reach into oslo.messaging's private internals (or the private test tooling
built around them) are listed; every other ported test must pass. They are collected and shown
as ``xfail`` (not run) with the reason below.
"""

from __future__ import annotations

__all__ = ["EXCLUDED", "EXCLUDED_MODULES", "reason_for"]

#: Whole modules not executed (importing them needs what they are excluded for).
EXCLUDED_MODULES = {
    "tests.functional.test_rabbitmq": (
        "oslo private internals: reads rpc_server.listener._poll_style_listener.conn, "
        "transport._driver._get_connection() and _reply_q_conn to compare socket ports, "
        "mock-patches oslo_messaging._drivers.impl_rabbit.random, and kills nodes of a pifpaf "
        "RabbitMQ cluster; msgbus's failover is tested on private nodes in tests/rabbit and "
        "tests/pika (test_broker_faults, test_faults)"),
}

#: (oslo test class, test method) -> reason.
EXCLUDED: dict[tuple[str, str], str] = {}


def reason_for(module: str, cls: str, method: str) -> str | None:
    """Why ``module``'s ``cls.method`` is not run on msgbus, or None when it must pass."""
    return EXCLUDED_MODULES.get(module) or EXCLUDED.get((cls, method))
