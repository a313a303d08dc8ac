"""Benchmarks on a throw-away 3-node RabbitMQ cluster: calls, casts and fanout through quorum
queues against classic queues, msgbus (both AMQP drivers) against oslo.messaging, same run
(``python -m benchmarks.cluster``; see benchmarks/README.md, "Cluster benchmarks")."""
