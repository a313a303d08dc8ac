"""The envelope and failure encodings, checked against the oslo.messaging wire facts."""

import json
import uuid

import pytest

import msgbus
from msgbus import envelope, failures


def test_envelope_wraps_inner_json_as_a_string() -> None:
    body = envelope.encode({"method": "m", "args": {}})
    outer = json.loads(body)
    assert outer["oslo.version"] == "2.0"
    assert isinstance(outer["oslo.message"], str)
    assert json.loads(outer["oslo.message"]) == {"method": "m", "args": {}}
    assert envelope.decode(body) == {"method": "m", "args": {}}


def test_legacy_unwrapped_message_is_accepted() -> None:
    assert envelope.decode(b'{"method": "m", "args": {}}') == {"method": "m", "args": {}}


@pytest.mark.parametrize("body, words", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not an object"),
    (b'{"oslo.version": "3.0", "oslo.message": "{}"}', "unsupported envelope version"),
    (b'{"oslo.version": "2.0", "oslo.message": {"a": 1}}', "not a JSON string"),
    (b'{"oslo.version": "2.0", "oslo.message": "{bad"}', "not JSON"),
    (b'{"oslo.version": "2.0", "oslo.message": "[]"}', "not an object"),
    (b"\xff\xfe", "not JSON"),
])
def test_malformed_bodies_are_refused_with_a_reason(body: bytes, words: str) -> None:
    with pytest.raises(envelope.MalformedMessage, match=words):
        envelope.decode(body)


def test_new_ids_are_distinct_uuid4_hex() -> None:
    ids = [envelope.new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.hex == value
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_context_is_flattened_and_restored() -> None:
    msg: dict = {"method": "m"}
    envelope.pack_context(msg, {"user": "u", "roles": ["r"]})
    assert msg == {"method": "m", "_context_user": "u", "_context_roles": ["r"]}
    assert envelope.unpack_context(msg) == {"user": "u", "roles": ["r"]}
    assert msg == {"method": "m"}


def test_failure_format_and_no_traceback_by_default() -> None:
    try:
        raise ValueError("bad", 3)
    except ValueError as exc:
        data = json.loads(failures.serialize(exc, with_traceback=False))
    assert data == {"class": "ValueError", "module": "builtins", "message": "('bad', 3)",
                    "tb": [], "args": ["bad", 3], "kwargs": {}}


def test_unknown_module_is_never_imported() -> None:
    failure = json.dumps({"class": "Boom", "module": "os", "message": "m", "tb": [],
                          "args": [], "kwargs": {}})
    exc = failures.deserialize(failure, allowed_modules=[])
    assert isinstance(exc, msgbus.RemoteError)
    assert exc.exc_type == "Boom" and exc.value == "m"


def test_oslo_module_names_map_to_msgbus_exceptions() -> None:
    failure = json.dumps({"class": "NoSuchMethod", "module": "oslo_messaging.rpc.dispatcher",
                          "message": "Endpoint does not support RPC method x", "tb": [],
                          "args": [], "kwargs": {"method": "x"}})
    exc = failures.deserialize(failure)
    assert isinstance(exc, msgbus.NoSuchMethod)


def test_remote_exception_keeps_original_names_on_next_hop() -> None:
    first = failures.deserialize(failures.serialize(KeyError("k"), with_traceback=False))
    data = json.loads(failures.serialize(first, with_traceback=False))
    assert (data["class"], data["module"]) == ("KeyError", "builtins")


def test_garbage_failure_becomes_remote_error() -> None:
    assert isinstance(failures.deserialize("not json"), msgbus.RemoteError)


def test_constructor_mismatch_falls_back_to_remote_error_or_message() -> None:
    failure = json.dumps({"class": "NoSuchMethod", "module": "msgbus.exceptions",
                          "message": "m", "tb": [], "args": ["a", "b", "c"], "kwargs": {}})
    exc = failures.deserialize(failure)
    assert isinstance(exc, (msgbus.NoSuchMethod, msgbus.RemoteError))
