"""The raw walker without its array passes (one Python step per message and bad region):
the differential tests' oracle. Test support, not product (app/ never imports it)."""

from __future__ import annotations

from app.core.framing.framer import Framer


class OracleFramer(Framer):
    """``Framer`` whose raw reader takes one step per message and bad region."""

    array_passes = False
