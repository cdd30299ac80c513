"""Text shown as written inside Textual markup.

Names, reasons and contract source come from users and `.bill` files: a
customer named "Acme [EU]" must not lose "[EU]" as an unknown tag, nor a
reason "[b]" turn bold.  Rich's ``escape`` leaves "[EU]" alone (it escapes
only what looks like a Rich tag), and Textual reads any bracket as one.
"""

from __future__ import annotations


def literal(text: str) -> str:
    """``text`` with every "[" escaped: Textual's markup shows it as written."""
    return text.replace("[", "\\[")
