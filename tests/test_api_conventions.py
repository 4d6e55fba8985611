"""Walk every public signature and check the conventions of DESIGN §3, so that they cannot rot."""

from __future__ import annotations

import importlib
import inspect

import pytest

SUBPACKAGES = ["hccomics.io", "hccomics.io.public", "hccomics.datasets", "hccomics.omics", "hccomics.dnb", "hccomics.survival", "hccomics.imaging",
               "hccomics.pipeline", "hccomics.pl", "hccomics.settings",
               "hccomics.errors"]


def _public(modname: str):
    mod = importlib.import_module(modname)
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield f"{modname}.{name}", obj


ITEMS = [item for m in SUBPACKAGES for item in _public(m)]


@pytest.mark.parametrize(("name", "obj"), ITEMS, ids=[n for n, _ in ITEMS])
def test_documented(name: str, obj) -> None:
    assert inspect.getdoc(obj), f"{name} has no docstring"


@pytest.mark.parametrize(("name", "obj"), [i for i in ITEMS if inspect.isfunction(i[1])], ids=[n for n, o in ITEMS if inspect.isfunction(o)])
def test_no_positional_booleans_or_seeds(name: str, obj) -> None:
    for p in inspect.signature(obj).parameters.values():
        if isinstance(p.default, bool) or p.name in {"seed", "copy", "key_added", "device"}:
            assert p.kind is inspect.Parameter.KEYWORD_ONLY or (name.endswith(("resolve_device", "seed_all")) and p.name in {"device", "seed"}), (
                f"{name}: option {p.name!r} must be keyword-only"
            )


def test_no_print_or_global_seeding_in_library() -> None:
    from pathlib import Path

    root = Path(importlib.import_module("hccomics").__file__).parent
    for path in root.rglob("*.py"):
        if path.name == "cli.py":  # the command prints its results by design
            continue
        src = path.read_text()
        assert "print(" not in src, f"{path}: use logging, not print"
        if path.name != "settings.py":
            assert "np.random.seed(" not in src, f"{path}: build a local generator instead"
