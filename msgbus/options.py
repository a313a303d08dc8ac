"""The core's oslo.config options, and how they get onto a user's ConfigOpts."""

from __future__ import annotations

from oslo_config import cfg

transport_opts = [
    cfg.StrOpt("transport_url", secret=True, default=None,
               help="URL of the messaging transport: its scheme picks the driver, for example "
                    "'rabbit://user:pass@host:5672/vhost' or 'fake://' for an in-process bus."),
    cfg.StrOpt("control_exchange", default="openstack",
               help="Exchange that targets without an explicit exchange use."),
]

rpc_opts = [
    cfg.FloatOpt("rpc_response_timeout", default=60, min=0,
                 help="Seconds an RPC call waits for its reply when the client sets no timeout."),
    cfg.BoolOpt("rpc_send_remote_traceback", default=False,
                help="Whether an RPC server includes the traceback of an endpoint's exception in "
                     "the failure it returns to the caller. Off by default: tracebacks can leak "
                     "server internals."),
    cfg.FloatOpt("reply_missing_queue_timeout", default=60.0, min=0,
                 help="Seconds a server keeps sending a reply again, in the background, while "
                      "the caller's reply queue does not exist (for example while the caller "
                      "declares it again after a broker restart); then the reply is dropped "
                      "with an error log. Applies to every driver."),
    cfg.FloatOpt("listen_timeout", default=30.0, min=0.1,
                 help="Seconds that starting an RPC server or a notification listener waits "
                      "for the broker (connecting, declaring and binding its queues) before it "
                      "fails with an error naming the broker. Once started, listeners "
                      "reconnect on their own for as long as they run."),
    cfg.IntOpt("rpc_duplicate_window", default=4096, min=16,
               help="How many recent message unique ids a server or reply waiter remembers to "
                    "drop redelivered duplicates."),
]

executor_opts = [
    cfg.IntOpt("executor_thread_pool_size", default=64, min=1,
               deprecated_name="rpc_thread_pool_size",
               help="Number of worker threads of the threading executor: how many messages one "
                    "server or listener handles at once."),
]


def register_opts(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Register the core options on ``conf`` (idempotent) and return it."""
    conf.register_opts(transport_opts)
    conf.register_opts(rpc_opts)
    conf.register_opts(executor_opts)
    return conf


def new_conf() -> cfg.ConfigOpts:
    """A private ConfigOpts with the core options, for callers that pass none."""
    conf = cfg.ConfigOpts()
    conf([], project="msgbus", default_config_files=[], default_config_dirs=[])
    return register_opts(conf)


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Entry point for ``oslo-config-generator --namespace msgbus``."""
    opts: list[tuple[str | None, list[cfg.Opt]]] = [
        (None, [*transport_opts, *rpc_opts, *executor_opts])]
    from msgbus.notify.options import notifier_opts, NOTIFIER_GROUP
    opts.append((NOTIFIER_GROUP, list(notifier_opts)))
    return opts
