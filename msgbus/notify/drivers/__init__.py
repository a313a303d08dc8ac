"""The notifier drivers msgbus ships (entry point group ``msgbus.notify.drivers``)."""
