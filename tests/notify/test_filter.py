"""NotificationFilter: regexes on publisher_id, event_type, context, metadata and payload."""

from __future__ import annotations

import pytest

from msgbus.notify import NotificationFilter

META = {"message_id": "m1", "timestamp": "2024-05-01 10:00:00.000000"}


def match(f: NotificationFilter, ctxt: object = None, publisher: object = "compute.h1",
          event: object = "instance.create", metadata: object = None,
          payload: object = None) -> bool:
    return f.match(ctxt if ctxt is not None else {}, publisher, event,
                   metadata if metadata is not None else META,
                   payload if payload is not None else {})


def test_empty_filter_accepts_everything() -> None:
    assert match(NotificationFilter(), publisher=None, event=None)


@pytest.mark.parametrize("pattern, value, expected", [
    (r"^compute\.", "compute.h1", True),
    (r"^compute\.", "network.h1", False),
    ("h1", "compute.h1", False),         # re.match: anchored at the start
    (".*h1$", "compute.h1", True),
    ("compute", None, False),            # a missing value never matches
    ("compute", 42, False),              # nor a value that is not a string
])
def test_publisher_id(pattern: str, value: object, expected: bool) -> None:
    assert match(NotificationFilter(publisher_id=pattern), publisher=value) is expected


def test_event_type() -> None:
    f = NotificationFilter(event_type=r"^instance\.(create|delete)$")
    assert match(f, event="instance.create")
    assert match(f, event="instance.delete")
    assert not match(f, event="instance.update")


def test_dict_fields_need_every_key() -> None:
    f = NotificationFilter(context={"project_id": "^p1$", "roles": "admin"},
                           payload={"state": "^active$"}, metadata={"timestamp": "^2024-05"})
    good_ctxt = {"project_id": "p1", "roles": "admin,member"}
    assert match(f, ctxt=good_ctxt, payload={"state": "active", "other": 1})
    assert not match(f, ctxt={"project_id": "p1"}, payload={"state": "active"})
    assert not match(f, ctxt=good_ctxt, payload={"state": "activex"})
    assert not match(f, ctxt=good_ctxt, payload={"state": ["active"]})
    assert not match(f, ctxt=good_ctxt, payload="not a dict")
    assert not match(f, ctxt=good_ctxt, payload={"state": "active"},
                     metadata={"timestamp": "2023-01-01 00:00:00.000000"})


def test_context_object_with_to_dict() -> None:
    class Ctx:
        def to_dict(self) -> dict:
            return {"user": "bob"}

    assert match(NotificationFilter(context={"user": "^bob$"}), ctxt=Ctx())
    assert not match(NotificationFilter(context={"user": "^alice$"}), ctxt=Ctx())


def test_all_fields_together() -> None:
    f = NotificationFilter(publisher_id="^api", event_type="^vol", payload={"size": "^1"})
    assert match(f, publisher="api.1", event="volume.attach", payload={"size": "10"})
    assert not match(f, publisher="cpu.1", event="volume.attach", payload={"size": "10"})


def test_bad_regex_fails_at_construction() -> None:
    import re
    with pytest.raises(re.error):
        NotificationFilter(event_type="(unclosed")
