"""The chaos tool: RPC calls and casts under broker faults, msgbus and oslo.messaging side by side.

``python -m benchmarks.chaos`` starts a private RabbitMQ node, then for each contender runs one
RPC server process and one load process (call threads and a numbered cast stream) while it drops
every connection a few times and restarts the broker, and prints what the callers saw.
"""
