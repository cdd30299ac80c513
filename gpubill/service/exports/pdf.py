"""Invoice and credit-note PDFs a finance team can send, with fpdf2.

The page: the issuer (the billing entity) and the customer, the number and
dates, a table of the fee lines (GPU type, region and class from the fee's
dimensions), the reason under each line that is not plain usage (policy
credits, late events, covered usage, true-ups), the discounts, credits and
taxes, and the totals exactly as the document has them. A draft says DRAFT
in its title and across every page. The bytes depend on the document only
(the creation date is the issuing date), so the same invoice gives the same
file.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import orjson
from fpdf import FPDF
from fpdf.enums import TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace

from gpubill.service.exports.common import (
    DIMENSION_COLUMNS, PAYMENT_TERMS, after_tax_credits, before_tax_credits, billed_fees, dec, dimension_columns,
    is_draft, period_dates,
)
from gpubill.dsl.currencies import minor_unit
from gpubill.engine.pricing.money import EXACT, round_amount
from gpubill.engine.spec.program import MoneyRounding
from gpubill.service.report import display_rounding

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}
CORE_FONT, CORE_ENCODING = "helvetica", "windows-1252"  # cp1252 has €, £ and ¥
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CHF": "CHF ", "CAD": "CA$", "AUD": "A$"}
#: Fee kinds whose reason is printed under the line: what is not plain usage at a list price.
EXPLAINED_KINDS = frozenset({"policy", "late", "covered", "true_up", "min_true_up", "termination_credit"})
INK, MUTED, RULE, ACCENT, SHADE = (25, 25, 35), (105, 110, 120), (200, 204, 210), (20, 60, 120), (238, 241, 246)
WATERMARK = (232, 232, 236)
MARGIN = 14
LINE_COLUMNS = ("Description", *(label for label, _ in DIMENSION_COLUMNS), "Units", "Unit price", "Amount")
LINE_WIDTHS = (58, 20, 18, 16, 22, 22, 26)


def invoice_pdf(doc: dict, *, credit_notes=()) -> bytes:
    """The invoice as a PDF; ``credit_notes`` (Lago's credit-note objects) issued on it are listed at the end."""
    pdf = _Document(doc["number"], draft=is_draft(doc), title="Invoice", hash_=doc.get("content_hash"),
                    core=_fits_core_font(doc, *credit_notes))
    pdf.start(doc["issuing_date"])
    start, end = period_dates(doc)
    facts = [("Invoice number", doc["number"]), ("Issue date", doc["issuing_date"]),
             ("Billing period", f"{start.isoformat()} to {end.isoformat()}"), _due(doc),
             ("Customer ID", doc["customer"]["external_id"])]
    if doc["invoice_type"] == "progressive_billing":
        facts.append(("Type", "progressive billing (usage so far this period)"))
    pdf.parties(doc.get("billing_entity") or {}, doc["customer"], facts)
    pdf.fee_table(doc)
    pdf.totals(_invoice_totals(doc), doc["currency"])
    if credit_notes:
        pdf.credit_notes(credit_notes, doc["currency"])
    pdf.closing(doc)
    return bytes(pdf.output())


def credit_note_pdf(cn: dict, invoice: dict) -> bytes:
    """A credit note on ``invoice``: the credited fee lines, its taxes and how the credit is paid out."""
    pdf = _Document(cn["number"], draft=is_draft(invoice), title="Credit note", hash_=cn.get("content_hash"),
                    core=_fits_core_font(cn, invoice))
    pdf.start(cn["issuing_date"])
    facts = [("Credit note number", cn["number"]), ("Issue date", cn["issuing_date"]),
             ("Credited invoice", f"{cn['invoice_number']} of {invoice['issuing_date']}"),
             ("Reason", cn["reason"].replace("_", " ")), ("Customer ID", invoice["customer"]["external_id"])]
    pdf.parties(invoice.get("billing_entity") or {}, invoice["customer"], facts)
    if cn.get("description"):
        pdf.paragraph(cn["description"])
    pdf.credit_table(cn)
    pdf.totals(_credit_note_totals(cn), cn["currency"])
    return bytes(pdf.output())


# ------------------------------------------------------------------ what the totals say


def _due(doc: dict) -> tuple[str, str]:
    return ("Due date", doc["payment_due_date"]) if doc.get("payment_due_date") else ("Payment terms", PAYMENT_TERMS)


def _invoice_totals(doc: dict) -> list[tuple[str, Decimal, str]]:
    """(label, amount, style) in Lago's order; style: "" | "sub" (a subtotal) | "total"."""
    rows = [("Fees", dec(doc["fees_amount"]), "")]
    rows += [(_credit_label(c), -dec(c["amount"]), "") for c in before_tax_credits(doc)]
    rows.append(("Subtotal excluding taxes", dec(doc["sub_total_excluding_taxes_amount"]), "sub"))
    rows += [(f"{t['tax_name']} {t['tax_rate']}% on {_plain(dec(t['fees_amount']), doc['currency'])}",
              dec(t["amount"]), "") for t in doc["applied_taxes"]]
    rows.append(("Subtotal including taxes", dec(doc["sub_total_including_taxes_amount"]), "sub"))
    rows += [(_credit_label(c), -dec(c["amount"]), "") for c in after_tax_credits(doc)]
    rows.append(("Total due", dec(doc["total_amount"]), "total"))
    return rows


def _credit_label(c: dict) -> str:
    kind = {"coupon": "Discount", "invoice": "Progressive billing credit", "credit_note": "Credit note",
            "wallet": "Prepaid credit"}[c["item"]["type"]]
    return f"{kind}: {c['item']['name']}"


def _credit_note_totals(cn: dict) -> list[tuple[str, Decimal, str]]:
    rows = [("Credited fees", sum((dec(i["amount"]) for i in cn["items"]), Decimal(0)), "")]
    rows.append(("Subtotal excluding taxes", dec(cn["sub_total_excluding_taxes_amount"]), "sub"))
    rows += [(f"{t['tax_name']} {t['tax_rate']}% on {_plain(dec(t['base_amount']), cn['currency'])}",
              dec(t["amount"]), "") for t in cn["applied_taxes"]]
    # a total asked tax included may differ from the subtotal plus the rounded taxes by their rounding
    rounding = dec(cn["total_amount"]) - sum((r[1] for r in rows[1:]), Decimal(0))
    if rounding:
        rows.append(("Rounding", rounding, ""))
    for kind, label in (("credit", "Credited to your account"), ("refund", "Refunded"),
                        ("offset", "Offset against the invoice")):
        if dec(cn[f"{kind}_amount"]):
            rows.append((label, dec(cn[f"{kind}_amount"]), ""))
    rows.append(("Total credit", dec(cn["total_amount"]), "total"))
    return rows


def _plain(amount: Decimal, cur: str) -> str:
    """A tax base: a sum of rounded amounts, printed at the currency's minor unit (JSON may carry trailing zeros)."""
    minor = Decimal(1).scaleb(-minor_unit(cur))
    finer = amount.as_tuple().exponent < minor.as_tuple().exponent
    return f"{round_amount(amount, MoneyRounding(quantum=minor)) if finer else amount:,f} {cur}"


def _money(amount: Decimal, cur: str) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}{SYMBOLS.get(cur, cur + ' ')}{amount.copy_abs():,f}"


# ------------------------------------------------------------------ the page


class _Document(FPDF):
    def __init__(self, number: str, *, draft: bool, title: str, hash_: str | None, core: bool = False):
        super().__init__(format="A4", unit="mm")
        self.number, self.draft, self.heading, self.hash = number, draft, title, hash_
        self.typeface = _fonts(self, core)
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, margin=18)
        self.set_title(f"{'Draft ' if draft else ''}{title} {number}")
        self.set_author("gpubill")
        self.set_creator("gpubill")
        self.alias_nb_pages()

    def normalize_text(self, text: str) -> str:
        if self.typeface == CORE_FONT:  # cp1252: a character it lacks prints as "?", never fails the invoice
            text = text.encode(CORE_ENCODING, "replace").decode(CORE_ENCODING)
        return super().normalize_text(text)

    def start(self, issuing_date: str) -> None:
        day = dt.date.fromisoformat(issuing_date)
        self.set_creation_date(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc))
        self.add_page()

    # fpdf2 hooks: every page
    def header(self) -> None:
        if self.draft:
            self._watermark()
        if self.page_no() > 1:
            self._style(8, color=MUTED)
            self.cell(0, 5, f"{self._title()} {self.number} (continued)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(2)

    def footer(self) -> None:
        self.set_y(-13)
        self._style(7, color=MUTED)
        left = f"Content hash (SHA-256): {self.hash}" if self.hash else f"{self._title()} {self.number}"
        self.cell(150, 4, left)
        self.cell(0, 4, f"Page {self.page_no()} of {{nb}}", align="R")

    def _title(self) -> str:
        return f"Draft {self.heading.lower()}" if self.draft else self.heading

    def _watermark(self) -> None:
        x, y = self.w / 2, self.h / 2
        self._style(110, "B", color=WATERMARK)
        with self.rotation(45, x, y):
            self.text(x - 68, y + 14, "DRAFT")
        self.set_xy(self.l_margin, self.t_margin)

    def _style(self, size: float, emphasis: str = "", color=INK) -> None:
        self.set_font(self.typeface, emphasis, size)
        self.set_text_color(*color)

    # blocks
    def parties(self, entity: dict, customer: dict, facts: list[tuple[str, str]]) -> None:
        top = self.get_y()
        self._style(15, "B", color=ACCENT)
        self.multi_cell(100, 7, entity.get("name") or entity.get("code") or "", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._address(entity, 100)
        left_end = self.get_y()
        self.set_xy(120, top)
        self._style(20, "B")
        self.cell(0, 9, self._title().upper(), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        for label, value in facts:
            self.set_x(110)
            self._style(8, color=MUTED)
            self.cell(32, 5, label)
            self._style(9, "B" if label.endswith("number") else "")
            self.multi_cell(0, 5, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_y(max(left_end, self.get_y()) + 6)
        self._style(8, "B", color=MUTED)
        self.cell(0, 5, "BILL TO", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._style(11, "B")
        self.multi_cell(100, 5.5, customer.get("name") or customer["external_id"], new_x=XPos.LMARGIN,
                        new_y=YPos.NEXT)
        self._address(customer, 100)
        self.ln(6)

    def _address(self, party: dict, width: float) -> None:
        self._style(9)
        lines = [*(party.get("address_lines") or ()), party.get("country") or ""]
        if party.get("tax_identification_number"):
            lines.append(f"VAT ID {party['tax_identification_number']}")
        for line in filter(None, lines):
            self.multi_cell(width, 4.6, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def paragraph(self, text: str) -> None:
        self._style(9)
        self.multi_cell(0, 5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(3)

    def fee_table(self, doc: dict) -> None:
        cur = doc["currency"]
        with self._table(LINE_COLUMNS[:-1] + (f"Amount ({cur})",), LINE_WIDTHS) as table:
            for fee in billed_fees(doc):
                units = _figure(fee["units"], 4, 0)
                price = _figure(fee["precise_unit_amount"], 6, 2)
                explained = fee["item"]["kind"] in EXPLAINED_KINDS
                row = table.row()
                for text in (fee["item"]["name"], *dimension_columns(fee), units, price):
                    row.cell(text)
                # the amount spans the line and its reason below, which keeps the two on one page
                row.cell(_plain_amount(fee["amount"]), rowspan=2 if explained else 1)
                if explained:
                    table.row().cell(fee["reason"], colspan=len(LINE_WIDTHS) - 1, style=_NOTE)

    def credit_table(self, cn: dict) -> None:
        widths = (98, 22, 20, 16, 26)
        columns = ("Credited line", *(label for label, _ in DIMENSION_COLUMNS), f"Amount ({cn['currency']})")
        with self._table(columns, widths, right=1) as table:
            for item in cn["items"]:
                row = table.row()
                for text in (item["fee"]["item"]["name"], *dimension_columns(item["fee"]),
                             _plain_amount(item["amount"])):
                    row.cell(text)

    def _table(self, columns, widths, right: int = 3):
        """A table whose last ``right`` columns (the numbers) are right-aligned."""
        self._style(8)
        self.set_draw_color(*RULE)
        head = FontFace(emphasis="BOLD", color=(255, 255, 255), fill_color=ACCENT, size_pt=8)
        table = self.table(col_widths=widths, width=sum(widths), align="LEFT", line_height=4.6,
                           text_align=("LEFT",) * (len(widths) - right) + ("RIGHT",) * right,
                           headings_style=head, borders_layout=TableBordersLayout.HORIZONTAL_LINES,
                           padding=(1.2, 1.2), v_align="TOP")
        return _TableWithHeading(table, columns)

    def totals(self, rows: list[tuple[str, Decimal, str]], cur: str) -> None:
        self.ln(4)
        if self.will_page_break(6 * len(rows) + 4):
            self.add_page()
        for label, amount, style in rows:
            self.set_x(self.w - MARGIN - 120)
            size, emph = (11, "B") if style == "total" else (9, "B" if style == "sub" else "")
            if style == "total":
                self.set_fill_color(*SHADE)
            self._style(size, emph)
            self.cell(85, 6.5 if style == "total" else 5.5, label, fill=style == "total", border="T" if style else "")
            self.cell(35, 6.5 if style == "total" else 5.5, _money(amount, cur), align="R", fill=style == "total",
                      border="T" if style else "", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def credit_notes(self, notes, cur: str) -> None:
        self.ln(6)
        self._style(10, "B")
        self.cell(0, 6, "Credit notes issued on this invoice", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        with self._table(("Number", "Date", "Reason", "Credit", "Refund", "Offset", "Total"),
                         (40, 22, 48, 18, 18, 18, 18), right=4) as table:
            for n in notes:
                row = table.row()
                for text in (n["number"], n["issuing_date"], n.get("description") or n["reason"],
                             n["credit_amount"], n["refund_amount"], n["offset_amount"], n["total_amount"]):
                    row.cell(text)

    def closing(self, doc: dict) -> None:
        self.ln(8)
        self._style(8, color=MUTED)
        text = (f"Contract {doc['contract']}, subscription {doc['external_subscription_id']}, plan {doc['plan']['code']}. "
                f"{_due(doc)[0]}: {_due(doc)[1]}")
        if self.draft:
            text += " This is a draft: its lines may still change until the invoice is finalized and numbered."
        self.multi_cell(0, 4, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


_NOTE = FontFace(emphasis="ITALICS", color=MUTED, size_pt=7, fill_color=SHADE)


class _TableWithHeading:
    """fpdf2's table with its heading row written first (repeated on every page it spans)."""

    def __init__(self, table_cm, columns):
        self.cm, self.columns = table_cm, columns

    def __enter__(self):
        table = self.cm.__enter__()
        row = table.row()
        for c in self.columns:
            row.cell(c)
        return table

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)


def _figure(text: str | None, places: int, at_least: int) -> str:
    """A quantity or unit price for people: half-even to at most ``places`` decimals, at least ``at_least``
    (the JSON and the UBL keep every digit)."""
    if text is None:
        return ""
    d = round_amount(dec(text), display_rounding(places)).normalize(EXACT)
    if -d.as_tuple().exponent < at_least:
        d = round_amount(d, MoneyRounding(quantum=Decimal(1).scaleb(-at_least)))  # padding only: exact
    return f"{d:,f}"


def _plain_amount(text: str) -> str:
    return f"{dec(text):,f}"


def _fits_core_font(*docs: dict) -> bool:
    """Whether every text of the documents prints in the core fonts (cp1252): then no TrueType font is
    parsed and embedded (a font costs about 0.2 s per PDF; most invoices never need one)."""
    try:
        orjson.dumps(docs).decode().encode(CORE_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def _fonts(pdf: FPDF, core: bool = False) -> str:
    """The core Helvetica when ``core`` (every text fits cp1252) or when the system lacks DejaVu Sans;
    else DejaVu Sans (every glyph a name may need)."""
    if core or not all((DEJAVU / f).exists() for f in FONT_FILES.values()):
        pdf.core_fonts_encoding = CORE_ENCODING
        return CORE_FONT
    for style, file in FONT_FILES.items():
        pdf.add_font("dejavu", style, str(DEJAVU / file))
    return "dejavu"
