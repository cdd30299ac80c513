"""The portal's one stylesheet keeps text readable: WCAG 2.1 contrast of at least 4.5:1 for every text colour
on the backgrounds it is drawn on (the colours are the stylesheet's own variables, read from the file)."""

from __future__ import annotations

import re

import pytest

from .conftest import ROOT

CSS = (ROOT / "gpubill" / "server" / "portal" / "static" / "portal.css").read_text()
COLOURS = dict(re.findall(r"--([a-z0-9-]+):\s*(#[0-9a-f]{6})", CSS))
# (text, background) pairs the stylesheet draws: body text, secondary text and links on the page and on panels,
# the status colours, button text, the header's text.
PAIRS = [(t, b) for t in ("fg", "muted", "accent", "ok", "warn", "bad") for b in ("bg", "panel")]
PAIRS += [("accent-fg", "accent"), ("bg", "fg")]
PAIRS += [(f"s{i}", "bg") for i in range(8)]  # chart series against the page: 3:1 is enough for graphics


def luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_stylesheet_names_its_colours():
    assert {"fg", "bg", "muted", "accent", "panel", "s0", "s7"} <= set(COLOURS)


@pytest.mark.parametrize("text,background", PAIRS)
def test_text_contrast(text, background):
    need = 3.0 if text.startswith("s") else 4.5
    assert contrast(COLOURS[text], COLOURS[background]) >= need, (text, background)


def test_contrast_formula():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") < 4.5 < contrast("#767676", "#ffffff")
