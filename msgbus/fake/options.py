"""The ``fake://`` driver's options: config group ``fake``, each overridable by a URL query option
of the same name (``fake://?max_message_size=1024``). Unknown query options are logged by name."""

from __future__ import annotations

import dataclasses
import logging
from typing import Mapping

from oslo_config import cfg

from msgbus.driver.url_options import read_options

LOG = logging.getLogger(__name__)

GROUP = "fake"
#: RabbitMQ's default ``max_message_size`` (128 MiB): what a real broker refuses, fake:// refuses.
RABBITMQ_MAX_MESSAGE_SIZE = 128 * 1024 * 1024

fake_opts = [
    cfg.IntOpt("max_message_size", default=RABBITMQ_MAX_MESSAGE_SIZE, min=0,
               help="Largest message body, in bytes, the fake broker accepts (0: no limit); a "
                    "larger send fails with MessageDeliveryFailure, as on RabbitMQ, whose "
                    "default max_message_size this is."),
    cfg.IntOpt("requeue_burst", default=20, min=1,
               help="How many times one message may be requeued within requeue_period seconds "
                    "before its redelivery is slowed to one every requeue_delay seconds (a "
                    "listener that requeues everything would otherwise spin). Logged once per "
                    "message and period."),
    cfg.FloatOpt("requeue_period", default=1.0, min=0.001,
                 help="The window, in seconds, in which requeue_burst requeues count as quick."),
    cfg.FloatOpt("requeue_delay", default=0.2, min=0,
                 help="Seconds a quickly requeued message waits before it is delivered again."),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The fake driver's options, for oslo-config-generator."""
    return [(GROUP, list(fake_opts))]


@dataclasses.dataclass(frozen=True)
class FakeSettings:
    """The options in effect for one fake:// transport: config, overridden by the URL's query."""

    max_message_size: int = RABBITMQ_MAX_MESSAGE_SIZE
    requeue_burst: int = 20
    requeue_period: float = 1.0
    requeue_delay: float = 0.2

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, query: Mapping[str, str],
                  url_text: str) -> "FakeSettings":
        """Read group ``fake`` of ``conf`` and apply ``query`` over it; warn about unknown keys."""
        return cls(**read_options(conf, GROUP, fake_opts, query, url_text=url_text))
