"""The path template of the route a request matched, mount prefixes included: `/v1/items/{item_id}`.

The prefix is read from the app's route tree, not from the path the client sent, so the values
of a mount's parameters (`/{tenant}/api`) never make a new error. A route object mounted in two
places has two prefixes; the one whose pattern matches the request's mount prefix is its own.
"""

from __future__ import annotations

import re
import weakref
from time import monotonic
from typing import Any

from starlette.routing import Host, Mount, compile_path
from starlette.types import Scope

# Mounts within mounts, followed this deep at most.
MAX_MOUNT_DEPTH = 32
# A route the tree does not know (added since it was read) makes it be read again, but not more often.
REREAD_AFTER_SECONDS = 10.0
UNKNOWN_MOUNT = "/{mount}"
_PARAMETER = re.compile(r"\{([^{}]*)\}")


class RouteTree:
    """Where each route of one router sits: the templates of the mounts above it."""

    def __init__(self, router: object) -> None:
        self.read_at = monotonic()
        self._prefixes: dict[int, tuple[object, list[str]]] = {}
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._walk(getattr(router, "routes", ()), "", 0)

    def _walk(self, routes: Any, prefix: str, depth: int) -> None:
        if depth > MAX_MOUNT_DEPTH:
            return
        for route in routes:
            self._prefixes.setdefault(id(route), (route, []))[1].append(prefix)
            if isinstance(route, Mount):
                self._walk(route.routes, prefix + route.path, depth + 1)
            elif isinstance(route, Host):
                self._walk(route.routes, prefix, depth + 1)

    def prefixes_of(self, route: object) -> list[str] | None:
        """The mount templates above `route`, one per place it is mounted; None if it is not in the tree."""
        entry = self._prefixes.get(id(route))
        if entry is None or entry[0] is not route:
            return None
        return entry[1]

    def matches(self, prefix_template: str, mount_prefix: str) -> bool:
        pattern = self._patterns.get(prefix_template)
        if pattern is None:
            pattern = self._patterns[prefix_template] = compile_path(prefix_template)[0]
        return pattern.match(mount_prefix) is not None


_trees: weakref.WeakKeyDictionary[object, RouteTree] = weakref.WeakKeyDictionary()


def tree_of(scope: Scope, route: object) -> RouteTree | None:
    """The route tree of the request's outermost router, read once (again if `route` is new to it)."""
    router = scope.get("router")
    if router is None:
        return None
    try:
        tree = _trees.get(router)
        if tree is None or (
            tree.prefixes_of(route) is None and monotonic() - tree.read_at > REREAD_AFTER_SECONDS
        ):
            tree = _trees[router] = RouteTree(router)
    except TypeError:  # a router that cannot be referred to weakly
        return RouteTree(router)
    return tree


def is_mounted_more_than_once(scope: Scope) -> bool:
    """Whether the matched route object sits in several places, so that its mount tells which."""
    route = scope.get("route")
    tree = tree_of(scope, route)
    prefixes = tree.prefixes_of(route) if tree is not None else None
    return prefixes is not None and len(prefixes) > 1


def route_template(scope: Scope) -> str | None:
    """The matched route's path template with any mount prefix, e.g. `/v1/items/{item_id}`."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    root_path: str = scope.get("root_path", "")
    mount_prefix = root_path[len(scope.get("app_root_path", root_path)) :]
    if isinstance(route, Mount):
        # Only the mount matched: what follows its prefix is whatever the client asked for.
        return f"{_prefix_template(scope, route, mount_prefix, template)}{template}/{{path}}"
    return _prefix_template(scope, route, mount_prefix, "") + template


def _prefix_template(scope: Scope, route: object, mount_prefix: str, own_path: str) -> str:
    """The template of the mounts above `route`; `own_path` is a matched mount's own path template."""
    tree = tree_of(scope, route)
    prefixes = tree.prefixes_of(route) if tree is not None else None
    if tree is not None and prefixes:
        if len(prefixes) == 1:
            return prefixes[0]
        for prefix in prefixes:
            if tree.matches(prefix + own_path, mount_prefix):
                return prefix
    # Not in the tree: the prefix as sent, unless a mount's parameters may be in it.
    own = {name.split(":")[0] for name in _PARAMETER.findall(getattr(route, "path", ""))}
    if any(name not in own for name in scope.get("path_params") or ()):
        return UNKNOWN_MOUNT
    if own_path:
        return mount_prefix[: len(mount_prefix) - len(own_path)] if mount_prefix.endswith(own_path) else ""
    return mount_prefix
