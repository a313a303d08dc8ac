"""Executors: how a server runs the messages its listener hands it (entry point group
``msgbus.executors``)."""

from msgbus.executors.base import Executor

__all__ = ["Executor"]
