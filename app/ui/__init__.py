"""The desktop app (PySide6 only): main window, Qt models, widgets, the job manager."""
