"""oslo.messaging's functional tests on ``pika://`` (msgbus-pika) and the shared broker."""

from .ported import test_classes

OSLO_DRIVER = "pika"
globals().update(test_classes(__name__))
