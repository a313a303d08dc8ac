"""oslo.messaging's own functional tests, read from its installed wheel, run on msgbus."""
