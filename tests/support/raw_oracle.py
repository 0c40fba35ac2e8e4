"""The raw walker without its array passes (one Python step per message and bad region)
and without its shortcuts (one step per length prefix; every candidate the 16-packet
pre-check keeps is asked): the differential tests' oracle. Test support, not product
(app/ never imports it)."""

from __future__ import annotations

from app.core.framing.framer import Framer


class OracleFramer(Framer):
    """``Framer`` whose raw reader takes one step per message, bad region and prefix."""

    array_passes = False
    shortcuts = False
