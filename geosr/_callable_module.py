"""Modules named like the function they hold, callable as it.

``geosr.evaluate`` is both a function (``geosr.evaluate(...)``) and a module
(``from geosr.evaluate import ...``). Importing the module rebinds the package attribute
``geosr.evaluate`` from the function to the module, so whether ``geosr.evaluate(...)``
worked used to depend on what had been imported before. Such a module is made callable as
its function, with the function's signature (``inspect.signature``, ``help``)."""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Make the module ``module_name`` call ``function`` when called."""

    class CallableModule(types.ModuleType):
        __signature__ = inspect.signature(function)

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
