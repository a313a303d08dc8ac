"""RPC dispatch: find the endpoint method a request names, check policy, call it."""

from __future__ import annotations

import abc
import functools
import logging
from typing import Any, Callable, Iterable, Sequence

from msgbus.exceptions import (ExpectedException, NoSuchMethod, RPCDispatcherError,
                               UnsupportedVersion)
from msgbus.rpc.versions import version_is_compatible
from msgbus.serializer import NoOpSerializer, Serializer
from msgbus.target import Target

LOG = logging.getLogger(__name__)

__all__ = ["RPCDispatcher", "RPCAccessPolicyBase", "DefaultRPCAccessPolicy",
           "ExplicitRPCAccessPolicy", "LegacyRPCAccessPolicy", "expose", "expected_exceptions",
           "ExpectedException", "NoSuchMethod", "UnsupportedVersion", "RPCDispatcherError"]

_DEFAULT_VERSION = "1.0"


class RPCAccessPolicyBase(metaclass=abc.ABCMeta):
    """Decides whether a method of an endpoint may be called remotely."""

    @abc.abstractmethod
    def is_allowed(self, endpoint: Any, method: str) -> bool:
        """True when ``endpoint.method`` may be invoked over RPC."""


class LegacyRPCAccessPolicy(RPCAccessPolicyBase):
    """Allows every method, private ones included (oslo.messaging's old behaviour)."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        return True


class DefaultRPCAccessPolicy(RPCAccessPolicyBase):
    """Refuses methods whose names start with an underscore."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        return not method.startswith("_")


class ExplicitRPCAccessPolicy(RPCAccessPolicyBase):
    """Allows only methods decorated with :func:`expose`."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        return bool(getattr(getattr(endpoint, method, None), "exposed", False))


def expose(func: Callable) -> Callable:
    """Mark an endpoint method as callable under ExplicitRPCAccessPolicy."""
    func.exposed = True  # type: ignore[attr-defined]
    return func


def expected_exceptions(*exceptions: type[BaseException]) -> Callable[[Callable], Callable]:
    """Declare exceptions an endpoint method raises on purpose: they are logged at debug only."""
    def decorator(func: Callable) -> Callable:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except exceptions:
                raise ExpectedException()
        return inner
    return decorator


class RPCDispatcher:
    """Maps requests to endpoint methods by namespace, version and name."""

    def __init__(self, endpoints: Sequence[Any], serializer: Serializer | None = None,
                 access_policy: type[RPCAccessPolicyBase] | RPCAccessPolicyBase | None = None
                 ) -> None:
        for endpoint in endpoints:
            target = getattr(endpoint, "target", None)
            if target is not None and not isinstance(target, Target):
                raise TypeError(f"endpoint {endpoint!r} has a 'target' that is not a Target")
        self.endpoints = list(endpoints)
        self.serializer = serializer or NoOpSerializer()
        if access_policy is None:
            policy: RPCAccessPolicyBase = DefaultRPCAccessPolicy()
        elif isinstance(access_policy, type):
            if not issubclass(access_policy, RPCAccessPolicyBase):
                raise TypeError(f"access_policy {access_policy!r} is not an RPCAccessPolicyBase")
            policy = access_policy()
        elif isinstance(access_policy, RPCAccessPolicyBase):
            policy = access_policy
        else:
            raise TypeError(f"access_policy {access_policy!r} is not an RPCAccessPolicyBase")
        self.access_policy = policy
        self._default_target = Target()

    def _candidates(self, namespace: str | None) -> Iterable[tuple[Any, Target]]:
        for endpoint in self.endpoints:
            target = getattr(endpoint, "target", None) or self._default_target
            if namespace in target.accepted_namespaces:
                yield endpoint, target

    def find(self, method: str, namespace: str | None, version: str) -> Callable:
        """The bound endpoint method for a request, or NoSuchMethod / UnsupportedVersion."""
        found_compatible = False
        for endpoint, target in self._candidates(namespace):
            if not version_is_compatible(target.version or _DEFAULT_VERSION, version):
                continue
            found_compatible = True
            func = getattr(endpoint, method, None)
            if callable(func) and self.access_policy.is_allowed(endpoint, method):
                return func
        if found_compatible:
            raise NoSuchMethod(method)
        raise UnsupportedVersion(version, method=method)

    def dispatch(self, ctxt: dict, message: dict) -> Any:
        """Run the request in ``message`` with context ``ctxt``; return the serialized result."""
        method = message.get("method")
        if not isinstance(method, str) or not method:
            raise NoSuchMethod(repr(method))
        args = message.get("args") or {}
        if not isinstance(args, dict):
            raise TypeError(f"arguments of {method} must be a JSON object, not "
                            f"{type(args).__name__}")
        namespace = message.get("namespace")
        version = str(message.get("version") or _DEFAULT_VERSION)
        func = self.find(method, namespace, version)
        user_ctxt = self.serializer.deserialize_context(ctxt)
        kwargs = {k: self.serializer.deserialize_entity(user_ctxt, v) for k, v in args.items()}
        result = func(user_ctxt, **kwargs)
        return self.serializer.serialize_entity(user_ctxt, result)
