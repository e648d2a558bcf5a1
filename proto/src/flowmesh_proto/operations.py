"""A request/reply operation, typed: the request Struct names its operation and its reply.

``class WorkflowGet(Request["Workflow"], frozen=True): operation = "workflow_get"`` says
that a ``WorkflowGet`` goes to the ``workflow_get`` operation and is answered with a
``Workflow``; a client's ``call(request)`` is then typed ``-> Workflow`` without a table
lookup in the caller. The type argument is the one source of the reply type: mypy reads
it statically and :func:`reply_type` reads it at run time.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, ForwardRef, Generic, TypeVar, cast, get_args, get_origin

import msgspec

Rep = TypeVar("Rep", bound=msgspec.Struct)

_replies: dict[type[Any], type[msgspec.Struct]] = {}


class Request(msgspec.Struct, Generic[Rep], frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every operation's request: unknown fields are refused, not ignored."""

    #: The operation's name: one subject token (``<prefix>.rpc.<service>.<operation>``).
    operation: ClassVar[str]


def reply_type(request: type[Request[Rep]]) -> type[Rep]:
    """The reply type ``request`` declares as its type argument (resolved once per type)."""
    found = _replies.get(request)
    if found is None:
        found = _resolve(request)
        _replies[request] = found
    return cast("type[Rep]", found)


def _resolve(request: type[Any]) -> type[msgspec.Struct]:
    for klass in request.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if get_origin(base) is not Request:
                continue
            (argument,) = get_args(base)
            if isinstance(argument, ForwardRef):
                argument = vars(sys.modules[klass.__module__])[argument.__forward_arg__]
            if isinstance(argument, type) and issubclass(argument, msgspec.Struct):
                return argument
    raise TypeError(f"{request.__name__} does not declare its reply type (Request[Reply])")
