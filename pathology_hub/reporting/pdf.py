"""The consultation report PDF (ReportLab platypus), Chinese and English, every font embedded.

Font choice, checked rather than assumed: ReportLab's built-in CID font ``STSong-Light``
is *not* embedded, so readers without Adobe's Asian font pack show empty boxes; ReportLab
rejects Debian's ``fonts-noto-cjk`` (CFF outlines); Debian's ``fonts-wqy-zenhei`` is a
TrueType collection ReportLab subsets and embeds. It is used for *all* text (Latin too),
so ``pdffonts`` lists only embedded fonts and no base-14 font sneaks in.

User text is printed exactly as typed: it is XML-escaped before it reaches Paragraph
markup (a diagnosis containing ``<b>`` or ``&`` prints literally), line breaks are kept,
and long texts flow onto further pages. The PDF is a pure function of the
:class:`ReportDocument` (ReportLab's invariant mode), so re-rendering a version gives
the same bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import threading
from xml.sax.saxutils import escape

import qrcode
import qrcode.constants
from PIL import Image as PILImage
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import (CondPageBreak, Flowable, Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer,
                                Table, TableStyle)

from .. import catalogue
from ..catalogue import N_, NP_
from .document import Figure, ReportDocument

FONT_PATH = os.environ.get("REPORT_FONT_PATH", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
FONT_PACKAGE = "fonts-wqy-zenhei"
FONT_NAME = "WQYZenHei"

_font_lock = threading.Lock()


class FontMissing(RuntimeError):
    """The CJK font the report needs is not installed."""


def register_fonts() -> str:
    """Register the WenQuanYi Zen Hei TrueType font once; returns its ReportLab name."""
    with _font_lock:
        if FONT_NAME in pdfmetrics.getRegisteredFontNames():
            return FONT_NAME
        if not os.path.isfile(FONT_PATH):
            raise FontMissing(
                f"the report font {FONT_PATH} is missing: install the Debian package {FONT_PACKAGE} "
                f"(scripts/system-deps run) or set REPORT_FONT_PATH to a TrueType CJK font")
        pdfmetrics.registerFont(TTFont(FONT_NAME, FONT_PATH, subfontIndex=0))
        # one face only: <b>/<i> in our own markup map to the same (embedded) font
        pdfmetrics.registerFontFamily(FONT_NAME, normal=FONT_NAME, bold=FONT_NAME, italic=FONT_NAME,
                                      boldItalic=FONT_NAME)
        return FONT_NAME


# ------------------------------------------------------------------ labels

#: key -> English message id, or (context, message id).  The words come from the catalogue (messages.po) in
#: the report's language; a context separates a PDF word from the same English word elsewhere
#: ("Age" of a patient, not of a request).  See docs/glossary.md for the Chinese terms.
LABEL_IDS: dict[str, str | tuple[str, str]] = {
    "patient_case": NP_("report PDF", "Patient and case"),
    "case_number": N_("Case number"),
    "patient_id": N_("Patient ID"),
    "patient_name": N_("Patient name"),
    "sex": N_("Sex"),
    "age": NP_("patient", "Age"),
    "requesting_institution": N_("Requesting institution"),
    "requesting_clinician": N_("Requesting clinician"),
    "specimen_type": N_("Specimen type"),
    "specimen_site": N_("Specimen site"),
    "priority": N_("Priority"),
    "clinical_history": N_("Clinical history"),
    "clinical_question": N_("Clinical question"),
    "findings": NP_("report PDF", "Report"),
    "specimen": N_("Specimen"),
    "gross_description": N_("Gross description"),
    "microscopic_description": N_("Microscopic description"),
    "diagnosis": N_("Diagnosis"),
    "diagnosis_code": N_("Diagnosis code"),
    "comment": N_("Comment"),
    "recommendations": N_("Recommendations"),
    "answer_to_question": N_("Answer to the clinical question"),
    "preliminary": NP_("report PDF", "Preliminary opinion (district pathologist) - preliminary, "
                                     "not the final diagnosis"),
    "preliminary_by": NP_("report PDF", "Preliminary opinion by"),
    "figures": NP_("report PDF", "Figures"),
    "figure": NP_("report PDF", "Figure %(n)s."),
    "magnification": N_("Magnification"),
    "slide": N_("Slide"),
    "slides": NP_("report PDF", "Slides examined"),
    "block": N_("Block / part"),
    "stain": N_("Stain"),
    "stain_he": N_("H&E"),
    "stain_ihc": N_("IHC"),
    "stain_special": N_("Special stain"),
    "stain_fluorescence": N_("Fluorescence"),
    "stain_multiplex": N_("Multiplex"),
    "view_link": NP_("report PDF", "View in the viewer"),
    "signatures": NP_("report PDF", "Signature manifest"),
    "sig_name": NP_("person", "Name"),
    "sig_institution": N_("Institution"),
    "sig_time": NP_("report PDF", "Date and time"),
    "sig_meaning": NP_("report PDF", "Meaning"),
    "sig_role": N_("Role"),
    "signer": NP_("report PDF", "signer"),
    "co-signer": NP_("report PDF", "co-signer"),
    "unsigned": NP_("report PDF", "Not signed"),
    "history": NP_("report PDF", "Version history"),
    "h_version": N_("Version"),
    "h_kind": NP_("report PDF", "Type"),
    "h_signed": NP_("report PDF", "Signed"),
    "h_signer": NP_("report PDF", "Signer"),
    "h_reason": N_("Reason"),
    "h_status": N_("Status"),
    "superseded": N_("superseded"),
    "current": NP_("report PDF", "current"),
    "version_line": NP_("report PDF", "Version %(n)s (%(kind)s)"),
    "original": NP_("report kind", "original"),
    "addendum": N_("addendum"),
    "amendment": N_("amendment"),
    "amendment_reason": N_("Reason for amendment"),
    "addendum_reason": N_("Reason for addendum"),
    "superseded_banner": NP_("report PDF", "SUPERSEDED by version %(m)s - this version is no longer valid; "
                                           "consult version %(m)s"),
    "verification": NP_("report PDF", "Verification"),
    "verification_code": N_("Verification code"),
    "verification_text": NP_("report PDF", "Scan the QR code or open the address below and enter the code to "
                                           "check that this report is authentic and whether a newer version exists."),
    "footer": NP_("report PDF", "%(case)s · version %(n)s · page %(x)s of %(y)s"),
    "electronic": NP_("report PDF", "This report was signed electronically (PAdES digital signature)."),
    "figure_unreadable": NP_("report PDF", "[figure image unreadable: %(error)s]"),
    # enum values of the case and consultation, printed as words rather than codes
    "priority_routine": NP_("priority", "Routine"),
    "priority_urgent": NP_("priority", "Urgent"),
    "priority_frozen": NP_("priority", "Frozen section (intra-operative)"),
    "sex_female": NP_("sex", "Female"),
    "sex_male": NP_("sex", "Male"),
    "sex_other": NP_("sex", "Other"),
    "sex_unknown": NP_("sex", "Unknown"),
}
#: Section headings printed in both languages on a Chinese report (the English under-title
#: lets a foreign reviewer find the sections); an English report prints English only.
BILINGUAL_HEADINGS = {"patient_case", "findings", "slides", "figures", "signatures", "history", "verification"}


class Labels:
    """The report's words in one language, looked up in the catalogue by key."""

    def __init__(self, language: str) -> None:
        self.language = catalogue.language_of(language)
        self._cache: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        if key not in self._cache:
            self._cache[key] = self.fmt(key)
        return self._cache[key]

    def get(self, key: str, default: str = "") -> str:
        return self[key] if key in LABEL_IDS else default

    def fmt(self, key: str, **params: object) -> str:
        """A label with ``%(name)s`` parameters filled in."""
        context, message = _split(LABEL_IDS[key])
        return catalogue.render(self.language, message, context=context, **params)

    def english(self, key: str) -> str:
        return _split(LABEL_IDS[key])[1]


def _split(entry: str | tuple[str, str]) -> tuple[str, str]:
    return entry if isinstance(entry, tuple) else ("", entry)


def labels_for(language: str) -> Labels:
    return Labels(language)


def enum_label(lab: Labels, kind: str, value: str) -> str:
    """The printed word for a stored enum value (``priority``/``sex``); an unknown value prints as stored."""
    if not value:
        return ""
    return lab.get(f"{kind}_{value}", value)


# ------------------------------------------------------------------ text helpers

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text(value: object) -> str:
    """User text -> Paragraph markup that prints literally (escaped, line breaks kept)."""
    s = _CONTROL.sub("", str(value or "")).replace("\r\n", "\n").replace("\r", "\n")
    s = escape(s)
    s = s.replace("\t", "&nbsp;&nbsp;&nbsp;&nbsp;")
    # keep runs of spaces visible at line starts (indented lists typed by pathologists)
    s = re.sub(r"(?m)^( +)", lambda m: "&nbsp;" * len(m.group(1)), s)
    return s.replace("\n", "<br/>")


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def format_datetime(value: dt.datetime | None) -> str:
    """``2026-11-23 09:40:12 CST (UTC+08:00)``: the time zone is always printed."""
    if value is None:
        return "—"
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    off = value.utcoffset() or dt.timedelta(0)
    total = int(off.total_seconds() // 60)
    sign = "+" if total >= 0 else "-"
    hh, mm_ = divmod(abs(total), 60)
    name = value.tzname() or ""
    utc = f"UTC{sign}{hh:02d}:{mm_:02d}"
    if name and name != utc and not name.startswith("UTC"):
        return f"{value:%Y-%m-%d %H:%M:%S} {name} ({utc})"
    return f"{value:%Y-%m-%d %H:%M:%S} ({utc})"


# ------------------------------------------------------------------ styles

class _Styles:
    def __init__(self, font: str) -> None:
        # ReportLab's default wrapping breaks between CJK characters and keeps Latin words
        # whole (wordWrap="CJK" would cut "University" in the middle); overlong words still split
        base = dict(fontName=font, textColor=colors.black, splitLongWords=1)
        self.body = ParagraphStyle("body", fontSize=10, leading=14, **base)
        self.small = ParagraphStyle("small", fontSize=8, leading=10.5, **base)
        self.label = ParagraphStyle("label", fontSize=8.5, leading=11,
                                    **{**base, "textColor": colors.HexColor("#444444")})
        self.cell = ParagraphStyle("cell", fontSize=9, leading=12, **base)
        self.institution = ParagraphStyle("inst", fontSize=15, leading=19, alignment=TA_CENTER, **base)
        self.address = ParagraphStyle("addr", fontSize=9, leading=12, alignment=TA_CENTER,
                                      **{**base, "textColor": colors.HexColor("#444444")})
        self.title = ParagraphStyle("title", fontSize=17, leading=22, alignment=TA_CENTER, spaceBefore=4,
                                    spaceAfter=4, **base)
        self.h2 = ParagraphStyle("h2", fontSize=12, leading=16, spaceBefore=8, spaceAfter=3, keepWithNext=1,
                                 **{**base, "textColor": colors.HexColor("#1f3a5f")})
        self.field_label = ParagraphStyle("fl", fontSize=10, leading=13, spaceBefore=5,
                                          **{**base, "textColor": colors.HexColor("#1f3a5f")})
        self.diagnosis = ParagraphStyle("dx", fontSize=12, leading=17, **base)
        self.version = ParagraphStyle("ver", fontSize=12, leading=16, alignment=TA_CENTER, **base)
        self.banner = ParagraphStyle("banner", fontSize=13, leading=18, alignment=TA_CENTER,
                                     **{**base, "textColor": colors.white})
        self.caption = ParagraphStyle("cap", fontSize=9, leading=12, **base)


# ------------------------------------------------------------------ page decoration

class _NumberedCanvas(rl_canvas.Canvas):
    """Defers page output until the end so every footer can say "page x of y"."""

    decorate = None  # set per document: callable(canvas, page, total)

    def __init__(self, *args, **kwargs) -> None:
        # the page preamble selects the initial font: make it ours, or Helvetica (not embedded) is referenced
        kwargs["initialFontName"] = kwargs.get("initialFontName") or FONT_NAME
        super().__init__(*args, **kwargs)
        self._saved: list[dict] = []

    def showPage(self) -> None:  # noqa: N802 - ReportLab API
        self._saved.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._saved)
        for number, state in enumerate(self._saved, start=1):
            self.__dict__.update(state)
            if self.decorate is not None:
                self.decorate(self, number, total)
            super().showPage()
        super().save()


def _fit(value: str, font: str, size: float, max_width: float) -> str:
    """``value`` cut (with an ellipsis) to fit ``max_width`` points on one line."""
    value = value[:200]
    if pdfmetrics.stringWidth(value, font, size) <= max_width:
        return value
    lo, hi = 0, len(value)
    while lo < hi:  # longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if pdfmetrics.stringWidth(value[:mid] + "…", font, size) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return value[:lo] + "…"


def _decorator(doc: ReportDocument, font: str, lab: Labels):
    width, height = A4
    footer_case = _fit(doc.case_number or "—", font, 8, 70 * mm)

    def decorate(c: rl_canvas.Canvas, page: int, total: int) -> None:
        c.saveState()
        c.setFont(font, 8)
        c.setFillColor(colors.HexColor("#555555"))
        header = _fit(doc.institution_name.replace("\n", " "), font, 8, width / 2 - 20 * mm)
        c.drawString(18 * mm, height - 11 * mm, header)
        c.drawRightString(width - 18 * mm, height - 11 * mm,
                          lab.fmt("version_line", n=doc.version, kind=lab.get(doc.version_kind, doc.version_kind)))
        c.setStrokeColor(colors.HexColor("#999999"))
        c.setLineWidth(0.5)
        c.line(18 * mm, height - 12.5 * mm, width - 18 * mm, height - 12.5 * mm)
        c.line(18 * mm, 14 * mm, width - 18 * mm, 14 * mm)
        c.drawCentredString(width / 2, 9.5 * mm,
                            lab.fmt("footer", case=footer_case, n=doc.version, x=page, y=total))
        if doc.superseded_by is not None:
            c.setFillColor(colors.HexColor("#b00020"))
            c.setFont(font, 9)
            c.drawCentredString(width / 2, height - 16.5 * mm,
                                lab.fmt("superseded_banner", m=doc.superseded_by))
        c.restoreState()

    return decorate


# ------------------------------------------------------------------ sections

def _heading(lab: Labels, key: str, st: _Styles) -> Paragraph:
    """A section heading; on a Chinese report the English name follows, smaller and grey."""
    words = text(lab[key])
    if lab.language != "en" and key in BILINGUAL_HEADINGS:
        words += f' <font size="9" color="#6b7a8f">{text(lab.english(key))}</font>'
    return Paragraph(words, st.h2)


def _grid(rows: list[tuple[str, str]], st: _Styles, avail: float) -> list:
    """Short label/value pairs in a two-pair-per-line grid; long values become paragraphs."""
    short = [(k, v) for k, v in rows if v and len(v) <= 240 and "\n" not in v]
    long_ = [(k, v) for k, v in rows if v and (len(v) > 240 or "\n" in v)]
    out: list = []
    if short:
        cells = []
        for i in range(0, len(short), 2):
            line = []
            for k, v in short[i:i + 2]:
                line += [Paragraph(text(k), st.label), Paragraph(text(v), st.cell)]
            while len(line) < 4:
                line.append("")
            cells.append(line)
        lw = 30 * mm
        vw = avail / 2 - lw
        t = Table(cells, colWidths=[lw, vw, lw, vw], splitInRow=1)
        t.setStyle(_TS([
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#999999")),
            ("INNERGRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
            ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f2f4f7")),
            ("BACKGROUND", (2, 0), (2, -1), colors.HexColor("#f2f4f7")),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ]))
        out.append(t)
    for k, v in long_:
        out.append(Paragraph(text(k), st.field_label))
        out.append(Paragraph(text(v), st.body))
    return out


def _field(label: str, value: str, st: _Styles, style: ParagraphStyle | None = None) -> list:
    """A labelled free-text field; the label stays with the text's first lines, the text
    itself splits across pages however long it is."""
    if not value:
        return []
    return [CondPageBreak(22 * mm), Paragraph(text(label), st.field_label), Paragraph(text(value), style or st.body)]


#: figure pixels kept per inch of printed size; more only bloats the PDF
FIGURE_DPI = 300


def _image_flowable(data: bytes, max_w: float, max_h: float) -> Image:
    """A figure scaled to fit, embedded as a high-quality JPEG at <= FIGURE_DPI.

    The stored figure (PNG, up to 2400 px) stays the evidence; the PDF gets a copy sized
    for print, so a report with several figures stays a few MB."""
    with PILImage.open(io.BytesIO(data)) as src:
        src.load()
        img = src.convert("RGB")
    iw, ih = img.size
    # figures are rendered for ~150 dpi print; a small one is not blown up to the page width
    scale = min(max_w / iw, max_h / ih, 72 / 150)
    width, height = iw * scale, ih * scale
    limit = (round(width / 72 * FIGURE_DPI), round(height / 72 * FIGURE_DPI))
    if iw > limit[0] or ih > limit[1]:
        img = img.resize((max(1, limit[0]), max(1, limit[1])), PILImage.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, subsampling=0)
    buf.seek(0)
    flowable = Image(buf, width=width, height=height)
    flowable.hAlign = "CENTER"
    return flowable


#: A number the author already typed at the start of a caption ("图1：", "Fig. 2.", "Figure 3 -"):
#: the PDF numbers figures itself, so it is not printed twice ("图 1. 图1：…").
_CAPTION_NUMBER = re.compile(r"^\s*(?:图|figure|fig\.?)\s*\d+\s*[:：.．、)）\-–—]?\s*", re.IGNORECASE)


def caption_text(caption: str) -> str:
    """The caption without a leading figure number of its own."""
    return _CAPTION_NUMBER.sub("", caption or "", count=1)


def _figure(fig: Figure, index: int, st: _Styles, lab: Labels, avail: float,
            heading: list | None = None) -> list:
    """One figure kept together with its caption (and, for the first, the section heading,
    so "Figures" is never left alone at the bottom of a page)."""
    parts = [f"<b>{text(lab.fmt('figure', n=index))}</b> {text(caption_text(fig.caption))}"]
    meta = []
    if fig.slide_label:
        meta.append(f"{text(lab['slide'])}: {text(fig.slide_label)}")
    if fig.magnification:
        meta.append(f"{text(lab['magnification'])}: {text(fig.magnification)}")
    if meta:
        parts.append(" · ".join(meta))
    if fig.view_link:
        parts.append(f'{text(lab["view_link"])}: <a href="{_attr(fig.view_link)}" color="#1f5fbf">'
                     f"{text(fig.view_link)}</a>")
    try:
        image = _image_flowable(fig.image, avail, 110 * mm)
    except Exception as exc:  # noqa: BLE001 - a broken figure must not hide the report text
        image = Paragraph(text(lab.fmt("figure_unreadable", error=type(exc).__name__)), st.small)
    return [KeepTogether([*(heading or []), image, Spacer(1, 2 * mm), Paragraph("<br/>".join(parts), st.caption)]),
            Spacer(1, 5 * mm)]


def stain_text(lab: Labels, category: str, name: str) -> str:
    """"IHC Ki-67" / "免疫组化 Ki-67"; an unclassified stain prints as typed."""
    if not category:
        return name
    label = lab.get(f"stain_{category}", category)
    return f"{label} {name}".strip() if name else label


def _slides(doc: ReportDocument, st: _Styles, lab: Labels, avail: float) -> list:
    if not doc.slides:
        return []
    rows = [[Paragraph(text(lab[k]), st.label) for k in ("slide", "block", "stain")]]
    for s in doc.slides:
        rows.append([Paragraph(text(s.label), st.cell), Paragraph(text(s.block_label or "—"), st.cell),
                     Paragraph(text(stain_text(lab, s.stain_category, s.stain_name) or "—"), st.cell)])
    t = Table(rows, colWidths=[avail * w for w in (0.2, 0.3, 0.5)], repeatRows=1, splitInRow=1)
    t.setStyle(_table_style())
    return [CondPageBreak(25 * mm), _heading(lab, "slides", st), t]


def _signatures(doc: ReportDocument, st: _Styles, lab: Labels, avail: float) -> list:
    out: list = [_heading(lab, "signatures", st)]
    if not doc.signatures:
        out.append(Paragraph(text(lab["unsigned"]), st.body))
        return out
    head = [Paragraph(text(lab[k]), st.label) for k in ("sig_name", "sig_institution", "sig_time",
                                                         "sig_meaning", "sig_role")]
    rows = [head]
    for sig in doc.signatures:
        rows.append([Paragraph(text(sig.full_name), st.cell), Paragraph(text(sig.institution), st.cell),
                     Paragraph(text(format_datetime(sig.signed_at)), st.cell),
                     Paragraph(text(sig.meaning), st.cell),
                     Paragraph(text(lab.get(sig.role, sig.role)), st.cell)])
    widths = [0.2, 0.24, 0.22, 0.22, 0.12]
    t = Table(rows, colWidths=[avail * w for w in widths], repeatRows=1, splitInRow=1)
    t.setStyle(_table_style())
    out += [t, Spacer(1, 1.5 * mm), Paragraph(text(lab["electronic"]), st.small)]
    return out


def _TS(commands: list) -> TableStyle:
    """TableStyle with our font for string cells (Table's default is Helvetica, never embedded)."""
    return TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT_NAME), *commands])


def _table_style() -> TableStyle:
    return _TS([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#999999")),
        ("INNERGRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6ebf2")),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ])


def _history(doc: ReportDocument, st: _Styles, lab: Labels, avail: float) -> list:
    entries = list(doc.history)
    if not entries:
        return []
    rows = [[Paragraph(text(lab[k]), st.label) for k in ("h_version", "h_kind", "h_signed", "h_signer",
                                                          "h_reason", "h_status")]]
    for e in sorted(entries, key=lambda e: e.number):
        status = lab["superseded"] if e.superseded else lab["current"]
        mark = f"<b>{e.number}</b>" if e.number == doc.version else str(e.number)
        rows.append([Paragraph(mark, st.cell), Paragraph(text(lab.get(e.kind, e.kind)), st.cell),
                     Paragraph(text(format_datetime(e.signed_at) if e.signed_at else "—"), st.cell),
                     Paragraph(text(e.signer), st.cell), Paragraph(text(e.reason), st.cell),
                     Paragraph(text(status), st.cell)])
    widths = [0.09, 0.13, 0.22, 0.18, 0.26, 0.12]
    t = Table(rows, colWidths=[avail * w for w in widths], repeatRows=1, splitInRow=1)
    style = _table_style()
    for i, e in enumerate(sorted(entries, key=lambda e: e.number), start=1):
        if e.number == doc.version:
            style.add("BACKGROUND", (0, i), (-1, i), colors.HexColor("#fff7d6"))
    t.setStyle(style)
    return [_heading(lab, "history", st), t]


def _verification(doc: ReportDocument, st: _Styles, lab: Labels, avail: float) -> list:
    if not (doc.verification_code or doc.verification_url):
        return []
    left = [Paragraph(text(lab["verification_text"]), st.body), Spacer(1, 2 * mm)]
    if doc.verification_code:
        left.append(Paragraph(f"{text(lab['verification_code'])}: <b>{text(doc.verification_code)}</b>",
                              st.diagnosis))
    if doc.verification_url:
        left.append(Paragraph(f'<a href="{_attr(doc.verification_url)}" color="#1f5fbf">'
                              f"{text(doc.verification_url)}</a>", st.small))
    qr_cell: object = ""
    if doc.verification_url:
        qr_cell = QrFlowable(doc.verification_url, 32 * mm)
    t = Table([[left, qr_cell]], colWidths=[avail - 38 * mm, 38 * mm])
    t.setStyle(_TS([("VALIGN", (0, 0), (-1, -1), "TOP"),
                           ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#999999"))]))
    return [CondPageBreak(45 * mm), _heading(lab, "verification", st), t]


class QrFlowable(Flowable):
    """A QR code drawn as vector squares (the ``qrcode`` library computes the modules).

    Not ReportLab's graphics widget: its Drawing sets a default font (Helvetica) in the
    graphics state, which would put a non-embedded font into the PDF."""

    def __init__(self, value: str, size: float) -> None:
        super().__init__()
        qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
        qr.add_data(value)
        qr.make(fit=True)
        self.matrix = qr.get_matrix()
        self.size = size
        self.width = self.height = size

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return self.size, self.size

    def draw(self) -> None:
        n = len(self.matrix)
        cell = self.size / n
        c = self.canv
        c.saveState()
        c.setFillColor(colors.white)
        c.rect(0, 0, self.size, self.size, stroke=0, fill=1)
        c.setFillColor(colors.black)
        path = c.beginPath()
        for r, line in enumerate(self.matrix):
            y = self.size - (r + 1) * cell
            for col, dark in enumerate(line):
                if dark:
                    path.rect(col * cell, y, cell, cell)
        c.drawPath(path, stroke=0, fill=1)
        c.restoreState()


def _banner(message: str, st: _Styles, avail: float, color: str) -> Table:
    t = Table([[Paragraph(text(message), st.banner)]], colWidths=[avail])
    t.setStyle(_TS([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(color)),
                           ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 7)]))
    return t


# ------------------------------------------------------------------ the document

def render_report_pdf(doc: ReportDocument) -> bytes:
    """The report PDF (unsigned; ``signing.sign_pdf`` adds the PAdES signature)."""
    font = register_fonts()
    lab = labels_for(doc.language)
    st = _Styles(font)
    buf = io.BytesIO()
    margin = 18 * mm
    template = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=22 * mm, bottomMargin=20 * mm,
        title=f"{doc.title} {doc.case_number} v{doc.version}".strip(), author=doc.institution_name,
        subject=doc.case_number, creator="Pathology Hub", producer="Pathology Hub (ReportLab)",
        invariant=1, initialFontName=font, lang="zh-CN" if lab.language == "zh" else "en",
    )
    avail = A4[0] - 2 * margin
    kind = lab.get(doc.version_kind, doc.version_kind)
    story: list = []
    story.append(Paragraph(text(doc.institution_name), st.institution))
    if doc.institution_address:
        story.append(Paragraph(text(doc.institution_address), st.address))
    story.append(Paragraph(text(doc.title), st.title))
    story.append(Paragraph(f"<b>{text(lab.fmt('version_line', n=doc.version, kind=kind))}</b>", st.version))
    if doc.version_kind == "amendment" or doc.amendment_reason:
        reason_label = lab["addendum_reason"] if doc.version_kind == "addendum" else lab["amendment_reason"]
        story.append(Paragraph(f"{text(reason_label)}: {text(doc.amendment_reason or '—')}",
                               ParagraphStyle("reason", parent=st.body, alignment=TA_CENTER)))
    if doc.superseded_by is not None:
        story += [Spacer(1, 2 * mm),
                  _banner(lab.fmt("superseded_banner", m=doc.superseded_by), st, avail, "#b00020")]
    story.append(Spacer(1, 4 * mm))

    # patient and case
    story.append(_heading(lab, "patient_case", st))
    rows = [(lab["case_number"], doc.case_number), (lab["patient_id"], doc.patient_id),
            (lab["patient_name"], doc.patient_name), (lab["sex"], enum_label(lab, "sex", doc.sex)),
            (lab["age"], doc.age), (lab["priority"], enum_label(lab, "priority", doc.priority)),
            (lab["requesting_institution"], doc.requesting_institution),
            (lab["requesting_clinician"], doc.requesting_clinician), (lab["specimen_type"], doc.specimen_type),
            (lab["specimen_site"], doc.specimen_site)]
    story += _grid(rows, st, avail)
    story += _field(lab["clinical_history"], doc.clinical_history, st)
    story += _field(lab["clinical_question"], doc.clinical_question, st)

    # structured fields
    story.append(_heading(lab, "findings", st))
    story += _field(lab["specimen"], doc.specimen, st)
    story += _field(lab["gross_description"], doc.gross_description, st)
    story += _field(lab["microscopic_description"], doc.microscopic_description, st)
    story += _field(lab["diagnosis"], doc.diagnosis, st, st.diagnosis)
    if doc.diagnosis_code:
        code = " ".join(p for p in (doc.diagnosis_code_system, doc.diagnosis_code) if p)
        if doc.diagnosis_code_display:
            code += f" — {doc.diagnosis_code_display}"
        story += _field(lab["diagnosis_code"], code, st)
    story += _field(lab["answer_to_question"], doc.answer_to_question, st)
    story += _field(lab["comment"], doc.comment, st)
    story += _field(lab["recommendations"], doc.recommendations, st)

    if doc.preliminary_opinion:
        inner = [Paragraph(f"<b>{text(lab['preliminary'])}</b>", st.body)]
        if doc.preliminary_opinion_by:
            inner.append(Paragraph(f"{text(lab['preliminary_by'])}: {text(doc.preliminary_opinion_by)}", st.small))
        inner.append(Spacer(1, 1.5 * mm))
        inner.append(Paragraph(text(doc.preliminary_opinion), st.body))
        box = Table([[inner]], colWidths=[avail], splitInRow=1)
        box.setStyle(_TS([("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor("#c07a00")),
                                 ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fff8ea")),
                                 ("TOPPADDING", (0, 0), (-1, -1), 4), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
        story += [Spacer(1, 4 * mm), box]

    story += _slides(doc, st, lab, avail)
    for i, fig in enumerate(doc.figures, start=1):
        story += _figure(fig, i, st, lab, avail, heading=[_heading(lab, "figures", st)] if i == 1 else None)

    story += _signatures(doc, st, lab, avail)
    story += _history(doc, st, lab, avail)
    story += _verification(doc, st, lab, avail)

    decorate = _decorator(doc, font, lab)
    canvasmaker = type("ReportCanvas", (_NumberedCanvas,), {"decorate": staticmethod(decorate)})
    template.build(story, canvasmaker=canvasmaker)
    return buf.getvalue()
