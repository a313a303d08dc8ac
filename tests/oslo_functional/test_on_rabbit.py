"""oslo.messaging's functional tests on ``rabbit://`` (msgbus-kombu) and the shared broker."""

from .ported import test_classes

OSLO_DRIVER = "rabbit"
globals().update(test_classes(__name__))
