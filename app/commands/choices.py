"""argparse ``choices`` read from their module only when argparse needs them.

Building the CLI's parser imports every command's ``add_parser``; a ``--framing`` choice
list imported from ``app.core.framing`` would bring numpy and the decoder into every
command's start-up (0.2-0.3 s), before a command can start work such as `tickscope
decode`'s sha256 of the capture. The values are read on first use: when an option's value
is checked or the help is shown. Give the option a ``metavar`` (argparse formats a
missing one from the choices when the option is added) and name the values in its help
with ``%(choices)s``.
"""

from __future__ import annotations

import importlib


class LazyChoices:
    """A sequence of ``module.name``'s values, imported when first asked."""

    def __init__(self, module: str, name: str):
        self._module, self._name = module, name
        self._values: tuple | None = None

    def _get(self) -> tuple:
        if self._values is None:
            self._values = tuple(getattr(importlib.import_module(self._module), self._name))
        return self._values

    def __iter__(self):
        return iter(self._get())

    def __contains__(self, value) -> bool:
        return value in self._get()

    def __len__(self) -> int:
        return len(self._get())

    def __getitem__(self, index):
        return self._get()[index]


def framings() -> LazyChoices:
    """The capture framings the decoder knows (``app.core.framing.FRAMINGS``)."""
    return LazyChoices("app.core.framing", "FRAMINGS")
