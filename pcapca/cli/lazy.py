"""Modules imported when first used (the recipe of importlib's documentation):
start-up time counts on big captures filtered to a few messages."""
from __future__ import annotations

import importlib.util
import sys


def lazy_import(name: str):
    """The module ``name``, executed at its first attribute access."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
