"""Finding plugins: every plugin, built-in or third-party, is an entry point in the
``crawler.plugins`` group, looked up by name and loaded in the order the user gave.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points

from crawler.errors import PluginError

ENTRY_POINT_GROUP = "crawler.plugins"


def available_plugins() -> dict[str, EntryPoint]:
    """Installed plugins by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def check_plugin_names(names: Sequence[str]) -> None:
    """Raise PluginError naming the unknown plugin and the available ones."""
    available = available_plugins()
    for name in names:
        if name not in available:
            known = ", ".join(sorted(available)) or "none installed"
            raise PluginError(f"unknown plugin {name!r} (available: {known})")
