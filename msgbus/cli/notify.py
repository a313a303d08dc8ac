"""``msgbus notify``: send one notification from the shell."""

from __future__ import annotations

import argparse
import logging
import sys

import msgbus
from msgbus.cli.exits import Exit, UsageError, code_for
from msgbus.cli.output import parse_pairs, show
from msgbus.notify import Notifier, get_notification_transport
from msgbus.notify.message import PRIORITIES


class _Errors(logging.Handler):
    """The notifier's (and its drivers') error log lines while one notification is sent: a
    Notifier logs a failure, it never raises one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run(args: argparse.Namespace) -> int:
    """Send ``EVENT`` with the ``key=value`` payload at ``--priority`` on ``--topic``."""
    if args.priority not in PRIORITIES:
        raise UsageError(f"unknown priority {args.priority!r}; one of: {', '.join(PRIORITIES)}")
    payload = parse_pairs(args.payload, what="payload entry")
    context = parse_pairs(args.context, what="context entry")
    errors = _Errors()
    logger = logging.getLogger("msgbus.notify")
    with get_notification_transport(url=args.url) as transport:
        notifier = Notifier(transport, args.publisher_id, driver="messagingv2",
                            topics=[args.topic], retry=args.retry)
        logger.addHandler(errors)
        try:
            getattr(notifier, args.priority)(context, args.event, payload)
        finally:
            logger.removeHandler(errors)
        where = f"topic {args.topic!r} on {transport.url.masked}"
    if errors.messages:
        failure = msgbus.MessageDeliveryFailure(errors.messages[-1])
        show(args, {"sent": False, "error": errors.messages[-1]},
             f"msgbus: error: notification not sent: {errors.messages[-1]}",
             stream=None if args.json else sys.stderr)
        return int(code_for(failure))
    show(args, {"sent": True, "event_type": args.event, "priority": args.priority,
                "publisher_id": args.publisher_id, "topic": args.topic, "payload": payload},
         f"{args.priority} notification {args.event!r} from {args.publisher_id!r} sent to {where}")
    return Exit.OK
