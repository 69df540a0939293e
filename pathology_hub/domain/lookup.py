"""Objects named in a URL, found by id before the policy is asked about them.

The web's ``@authorize(..., load=...)`` decorator turns the id in the URL into the object and
then checks the policy on it; these finders are that first step, so web modules need not know
the models. They check nothing themselves: an object that does not exist is ``None`` (404).
"""

from __future__ import annotations

from typing import Any, Callable

from ..models import Case, Report
from ..models.consultations import Consultation
from . import unit_of_work

_KINDS: dict[str, type] = {"case": Case, "consultation": Consultation, "report": Report}


def find(kind: str, object_id: Any) -> Any:
    """The ``kind`` object with this id in the caller's session, or None."""
    if object_id is None:
        return None
    return unit_of_work.current().get(_KINDS[kind], object_id)


def loader(kind: str, key: str) -> Callable[..., Any]:
    """A ``load=`` function for ``@authorize``: reads the id from the URL keyword ``key``."""
    def load(**kwargs: Any) -> Any:
        return find(kind, kwargs.get(key))
    return load
