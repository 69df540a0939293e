"""The ``authorize`` decorator: the web side of :mod:`pathology_hub.domain.policy`."""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from flask_login import current_user

from ..domain import policy, unit_of_work
from ..domain.errors import NotFound


def me() -> Any:
    """The signed-in user as the model object (not Flask-Login's proxy): what domain functions take.

    The one definition for every web module (it used to be written out in seven of them)."""
    return current_user._get_current_object()


def authorize(action: str, *, load: Callable[..., Any] | None = None, as_arg: str | None = None):
    """Check ``action`` for the current user; ``load`` turns the URL kwargs into the object.

    The loaded object replaces the id kwarg (named by ``as_arg``) so the view
    receives the object it is allowed to act on and never re-queries it unchecked.
    """
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            obj = None
            if load is not None:
                obj = load(**kwargs)
                if obj is None:
                    raise NotFound("Not found.")
                if as_arg:
                    kwargs = {k: v for k, v in kwargs.items() if not k.endswith("_id")}
                    kwargs[as_arg] = obj
            policy.ensure(me(), action, obj)
            return view(*args, **kwargs)
        wrapper.required_action = action  # type: ignore[attr-defined]
        return wrapper
    return decorator


def load_model(find: Callable[[Any], Any], key: str = "id") -> Callable[..., Any]:
    """A loader for :func:`authorize`: ``find`` is a domain function from the id in the URL
    (``key``) to the object or None (e.g. ``administration.find_user``). A model class is
    still accepted and read by primary key, for the modules that have not moved to a domain
    finder yet (issue #17)."""
    if isinstance(find, type):
        model = find
        find = lambda ident: unit_of_work.get(model, ident)  # noqa: E731
    def loader(**kwargs: Any) -> Any:
        value = kwargs.get(key)
        return find(value) if value is not None else None
    return loader
