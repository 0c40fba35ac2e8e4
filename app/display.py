"""Can this process open a window? Decided before Qt is imported, from the standard library only.

Qt aborts (exit 134 after tens of seconds of plugin probing, with its raw "could not
connect to display" text) when it has no display; ``tickscope`` and ``make run`` ask
here first and print one line saying what to do instead. ``python -m app.display``
runs the same check without any installed dependency (``make run`` calls it before it
creates the virtual environment): exit 0 when a window can open, else the line on
stderr and exit 2 (``app.errors.EXIT_USAGE``).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path

# Platform plugins that need no display server at all.
HEADLESS_PLATFORMS = frozenset({"offscreen", "minimal", "vnc", "linuxfb", "eglfs", "minimalegl", "vkkhrdisplay"})
# Qt 6.5+'s xcb plugin refuses to load without it (and names it only in its debug output).
XCB_LIBRARIES = ("xcb-cursor", "xcb-icccm", "xcb-keysyms")
XCB_PACKAGES = "libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1"
NO_DISPLAY_ADVICE = (f"install the xcb packages (sudo apt install {XCB_PACKAGES}) on a desktop, "
                     "or set QT_QPA_PLATFORM=offscreen to run without one")


def _local_x_socket(display: str) -> Path | None:
    """The Unix socket of a local X display (``:0``, ``unix:0.0``); None for a remote one."""
    host, _, rest = display.rpartition(":")
    if host not in ("", "unix") or not rest:
        return None
    number = rest.split(".", 1)[0]
    return Path("/tmp/.X11-unix") / f"X{number}" if number.isdigit() else None


def display_problem(env: Mapping[str, str] | None = None, *, platform: str = sys.platform,
                    find_library=ctypes.util.find_library) -> str | None:
    """One line saying why no window can open here and what to do, or None if one can."""
    env = os.environ if env is None else env
    if not platform.startswith("linux"):
        return None  # macOS and Windows always have their window system
    chosen = (env.get("QT_QPA_PLATFORM") or "").split(":", 1)[0].split(";", 1)[0].strip().lower()
    if chosen in HEADLESS_PLATFORMS:
        return None
    if chosen.startswith("wayland") or (not chosen and env.get("WAYLAND_DISPLAY")):
        if env.get("WAYLAND_DISPLAY"):
            return None
        return f"no Wayland display (WAYLAND_DISPLAY is not set): {NO_DISPLAY_ADVICE}"
    display = env.get("DISPLAY", "")
    if not display:
        return f"no display to open a window on (DISPLAY is not set): {NO_DISPLAY_ADVICE}"
    socket = _local_x_socket(display)
    if socket is not None and not socket.exists():
        return f"no X server at DISPLAY={display} ({socket} does not exist): {NO_DISPLAY_ADVICE}"
    missing = [name for name in XCB_LIBRARIES if find_library(name) is None]
    if missing:
        libs = ", ".join(f"lib{name}" for name in missing)
        return (f"Qt's X11 plugin needs {libs}, which is not installed: sudo apt install {XCB_PACKAGES} "
                "(or set QT_QPA_PLATFORM=offscreen to run without a display)")
    return None


def main() -> int:
    problem = display_problem()
    if problem is None:
        return 0
    print(f"tickscope: error: {problem}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
