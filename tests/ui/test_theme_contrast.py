"""Text contrast of both themes, computed from their palettes: at least 4.5:1 (WCAG AA)
for every text colour on every background it is drawn on, status colours included."""

from __future__ import annotations

import pytest

from app.ui import theme

AA = 4.5


def test_the_contrast_formula_matches_wcag():
    assert theme.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert theme.contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("name, palette", [("light", theme.LIGHT), ("dark", theme.DARK)])
def test_every_text_colour_reaches_aa_on_its_backgrounds(name, palette):
    low = []
    for foreground, backgrounds in theme.TEXT_ON.items():
        for background in backgrounds:
            ratio = theme.contrast(palette[foreground], palette[background])
            if ratio < AA:
                low.append(f"{foreground} on {background}: {ratio:.2f}")
    for status, colour in palette["status"].items():
        for background in ("base", "alt"):  # the queue's rows
            ratio = theme.contrast(colour, palette[background])
            if ratio < AA:
                low.append(f"status {status} on {background}: {ratio:.2f}")
    assert not low, f"{name} theme below {AA}:1: " + "; ".join(low)


def test_the_queue_uses_the_palettes_status_colours(qapp):
    for choice, palette in (("dark", theme.DARK), ("light", theme.LIGHT)):
        theme.apply(choice)
        assert theme.status_color("failed") == palette["status"]["failed"]
