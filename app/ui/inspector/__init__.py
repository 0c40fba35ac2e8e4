"""The packet inspector: a Wireshark-style window over one capture's packets and faults."""

from app.ui.inspector.window import InspectorWindow, open_inspector

__all__ = ["InspectorWindow", "open_inspector"]
