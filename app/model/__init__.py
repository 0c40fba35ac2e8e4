"""The application model: the desktop app's state and rules in plain Python, no Qt.

napari's ``components`` / glue-core: everything the window decides lives here, below
``app/ui``, and the command line uses the same functions. Qt widgets observe it through
thin adapters (``app.ui.queue_model``) and hold no rule of their own.

- ``intake``: what a dropped or added path is (``app.pipeline.inputs.select_inputs``, the
  command line's rule) and how the queue shows it;
- ``targets``: whether a path can be a target (``app.store.checks``) and what it holds;
- ``session``: the queue of one target: one ``QueueRow`` (a ``CaptureRecord``) per file, one status vocabulary,
  structured faults, counts derived from the target after every change, the honest ETA;
- ``queue_store``: the queue saved next to the app's data, keyed by target, restored on restart;
- ``clock``: not here; tick time and trading date are ``app.core.timezones``.
"""
