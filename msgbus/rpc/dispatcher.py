"""RPC dispatch: find the endpoint method a request names, check policy, call it."""

from __future__ import annotations

import abc
import functools
import inspect
import logging
from typing import Any, Awaitable, Callable, Iterable, Sequence

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
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def inner_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                except exceptions:
                    raise ExpectedException()
            return inner_async

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

    def _prepare(self, ctxt: dict, message: dict) -> tuple[Callable, Any, dict]:
        """The endpoint method, the user's context and the deserialized arguments."""
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
        return func, user_ctxt, kwargs

    def is_async(self, message: dict) -> bool:
        """Whether the request names an ``async def`` endpoint method (False when it names
        nothing callable: the error is raised where the request is dispatched)."""
        method = message.get("method")
        if not isinstance(method, str) or not method:
            return False
        try:
            func = self.find(method, message.get("namespace"),
                             str(message.get("version") or _DEFAULT_VERSION))
        except (NoSuchMethod, UnsupportedVersion):
            return False
        return inspect.iscoroutinefunction(func)

    def dispatch(self, ctxt: dict, message: dict) -> Any:
        """Run the request in ``message`` with context ``ctxt``; return the serialized result."""
        func, user_ctxt, kwargs = self._prepare(ctxt, message)
        if inspect.iscoroutinefunction(func):
            raise RPCDispatcherError(
                f"endpoint method {message.get('method')!r} is 'async def': serve it with "
                f"get_rpc_server(..., executor='asyncio') started from the application's event "
                f"loop")
        result = func(user_ctxt, **kwargs)
        return self.serializer.serialize_entity(user_ctxt, result)

    async def dispatch_async(self, ctxt: dict, message: dict,
                             run_in_thread: Callable[..., Awaitable[Any]]) -> Any:
        """:meth:`dispatch` on an event loop: an ``async def`` method is awaited here, a plain
        one runs through ``run_in_thread(fn, *args)`` so it cannot block the loop."""
        func, user_ctxt, kwargs = self._prepare(ctxt, message)
        if inspect.iscoroutinefunction(func):
            result = await func(user_ctxt, **kwargs)
        else:
            result = await run_in_thread(functools.partial(func, user_ctxt, **kwargs))
        return self.serializer.serialize_entity(user_ctxt, result)

    def has_async_methods(self) -> bool:
        """Whether some endpoint has a public ``async def`` method (to warn about executors)."""
        for endpoint in self.endpoints:
            for name, value in inspect.getmembers(type(endpoint)):
                if not name.startswith("_") and inspect.iscoroutinefunction(value):
                    return True
        return False
