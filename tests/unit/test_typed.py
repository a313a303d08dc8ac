"""msgbus and both AMQP drivers ship a PEP 561 ``py.typed`` marker, so type checkers read their
annotations."""

import importlib
import pathlib

import pytest


@pytest.mark.parametrize("package", ["msgbus", "msgbus_kombu", "msgbus_pika"])
def test_package_is_marked_typed(package: str) -> None:
    module = importlib.import_module(package)
    assert (pathlib.Path(module.__file__).parent / "py.typed").is_file()
