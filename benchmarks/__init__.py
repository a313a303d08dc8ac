"""Benchmarks: msgbus against oslo.messaging and raw pika (run ``python -m benchmarks``)."""
