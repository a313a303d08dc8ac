"""Tests of the rabbit:// driver (msgbus-kombu) against the real RabbitMQ."""
