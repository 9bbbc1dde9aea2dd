"""The agreement document (调解协议书) as a PDF, laid out from the same lines as the text version.

Chinese is set in STSong-Light, one of the standard Adobe CID fonts that reportlab knows without
any font file: the PDF names the font and its UniGB-UCS2-H encoding and every reader supplies
the glyphs, so rendering works offline and the document stays small. Masking is decided before
this module: it gets exactly the text that the plain-text document would show the caller.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

FONT = "STSong-Light"
SIZE, TITLE_SIZE, LEADING = 11.0, 18.0, 18.0
MARGIN = 64.0


def _font() -> str:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _wrap(line: str, width: float, size: float) -> Iterator[str]:
    """Break a line into pieces no wider than `width` (character by character, as CJK allows)."""
    piece = ""
    for ch in line:
        if piece and pdfmetrics.stringWidth(piece + ch, FONT, size) > width:
            yield piece
            piece = ""
        piece += ch
    yield piece


def render_agreement_pdf(text: str, *, title: str, subject: str) -> bytes:
    """Lay out the text document (first line = the title) on A4 pages; return the PDF bytes."""
    font = _font()
    buf = io.BytesIO()
    page_w, page_h = A4
    pdf = canvas.Canvas(buf, pagesize=A4, invariant=1, pageCompression=1)
    pdf.setTitle(title)
    pdf.setSubject(subject)
    pdf.setCreator("Fengqiao mediation")
    lines = text.splitlines()
    y = page_h - MARGIN
    pdf.setFont(font, TITLE_SIZE)
    pdf.drawCentredString(page_w / 2, y, (lines[0] if lines else title).strip())
    y -= LEADING * 2
    pdf.setFont(font, SIZE)
    for line in lines[1:]:
        for piece in _wrap(line, page_w - 2 * MARGIN, SIZE):
            if y < MARGIN:
                pdf.showPage()
                pdf.setFont(font, SIZE)
                y = page_h - MARGIN
            pdf.drawString(MARGIN, y, piece)
            y -= LEADING
    pdf.showPage()
    pdf.save()
    return buf.getvalue()
