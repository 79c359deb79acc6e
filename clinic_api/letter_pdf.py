"""The monthly letter as an A4 PDF (fpdf2), in large type for readers over 75.

The text is Swedish with å/ä/ö, which the PDF core fonts cannot carry; the letter embeds
Debian's DejaVu Sans (package fonts-dejavu-core, installed by ./dev). Without it the letter
cannot be made: ``FontMissingError``, which the route answers with 503.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from clinic_api.labels import TZ
from clinic_api.patient_letter import MONTH_NAMES, MonthlySummary, paragraph, table

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
FAMILY = "DejaVu"
BODY_PT = 14  # the body's size: large type for older readers (≥ 14 pt)
HEADING_PT = 17
TITLE_PT = 20
LINE_MM = 7.5  # 14 pt ≈ 4.9 mm; 1.5 line spacing
MARGIN_MM = 20


class FontMissingError(RuntimeError):
    """The TrueType font the letter needs is not installed."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"font {path} is missing; install the Debian package fonts-dejavu-core")
        self.path = path


class _Letter(FPDF):
    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FAMILY, size=11)
        self.cell(0, 6, f"Sida {self.page_no()} av {{nb}}", align="C")


def _font_paths(font_dir: Path) -> dict[str, Path]:
    paths = {style: font_dir / name for style, name in FONT_FILES.items()}
    for p in paths.values():
        if not p.is_file():
            raise FontMissingError(p)
    return paths


def _date(d: dt.date) -> str:
    return f"{d.day} {MONTH_NAMES[d.month - 1]} {d.year}"


def render(summary: MonthlySummary, *, printed_at: dt.datetime, font_dir: Path | None = None) -> bytes:
    """The letter's PDF bytes."""
    fonts = _font_paths(font_dir or FONT_DIR)
    pdf = _Letter(orientation="portrait", unit="mm", format="A4")
    for style, path in fonts.items():
        pdf.add_font(FAMILY, style, str(path))
    pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
    pdf.set_auto_page_break(auto=True, margin=MARGIN_MM + 5)
    pdf.set_lang("sv")
    pdf.set_title(f"Månadsbrev {summary.month.name}")
    pdf.set_creator("egenmon")
    pdf.add_page()

    def text(s: str, *, size: int = BODY_PT, bold: bool = False, after: float = 0) -> None:
        pdf.set_font(FAMILY, "B" if bold else "", size)
        # Ragged right: justified lines with wide gaps are harder to read.
        pdf.multi_cell(0, LINE_MM * size / BODY_PT, s, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if after:
            pdf.ln(after)

    month = summary.month
    text(summary.unit_name, size=BODY_PT, bold=True)
    text(f"Utskrivet {_date(printed_at.astimezone(TZ).date())}", after=6)
    text(f"Dina mätningar i {month.name}", size=TITLE_PT, bold=True, after=4)
    text(f"Hej {summary.display_name}!", after=2)
    text(
        f"Här är en sammanfattning av de värden du har mätt hemma i {month.name}. "
        "Din mottagning följer dina mätningar.",
        after=4,
    )
    if not summary.kinds:
        text(f"Vi har inte fått några mätningar från dig i {month.name}.", after=4)
    for k in summary.kinds:
        # Keep a kind's heading with its first lines: start a new page when little room is left.
        if pdf.will_page_break(60):
            pdf.add_page()
        text(k.title, size=HEADING_PT, bold=True, after=1)
        text(" ".join(paragraph(k, month)), after=2)
        rows = table(k)
        if rows:
            pdf.set_font(FAMILY, size=BODY_PT)
            with pdf.table(
                col_widths=(42, 17, 37, 37, 37),
                text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
                line_height=LINE_MM,
                padding=1,
                first_row_as_headings=True,
            ) as t:
                for row in (("Värde", "Antal", "Medel", "Lägst", "Högst"), *rows):
                    r = t.row()
                    for cell in row:
                        r.cell(cell)
        pdf.ln(6)
    if pdf.will_page_break(70):
        pdf.add_page()
    text("Frågor om dina värden?", size=HEADING_PT, bold=True, after=1)
    text(
        f"Kontakta din mottagning, {summary.unit_name}, om du har frågor om dina värden eller om mätningarna. "
        "Vid akuta besvär: ring 112. Råd om vård dygnet runt: ring 1177.",
        after=4,
    )
    text("Tack för att du mäter hemma. Fortsätt gärna som du gör.", after=4)
    text("Med vänliga hälsningar")
    text(summary.unit_name)
    return bytes(pdf.output())
