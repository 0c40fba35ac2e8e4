"""The raw walker without its array passes (one Python step per message and bad region)
and without its shortcuts (one step per length prefix; every candidate the 16-packet
pre-check keeps is asked): the differential tests' oracle. Test support, not product
(app/ never imports it)."""

from __future__ import annotations

from app.core.framing.framer import Framer
from app.core.framing.resync import _raw_candidates


class OracleFramer(Framer):
    """``Framer`` whose raw reader takes one step per message, bad region and prefix."""

    array_passes = False
    shortcuts = False

    def _candidate_filter(self, fmt, final=False):
        """Raw: every start with a count and a known first length is asked (no chains)."""
        if fmt is None:
            return "raw-plain", _raw_candidates, 4
        return super()._candidate_filter(fmt, final)
