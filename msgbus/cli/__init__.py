"""The ``msgbus`` command line tool."""
