"""Administration of the audit trail: search it, export it as CSV, check its hash chain."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Iterator

from flask import Blueprint, Flask, Response, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..domain import audit, audit_browse
from ..domain.errors import ValidationFailed
from .authz import authorize, me
from .security import client_ip
from .errors import message_of

bp = Blueprint("audit", __name__, url_prefix="/admin")

#: Readable names of the actions an administrator looks for most (the code is shown as well).
ACTION_LABELS = {"access.refused": _l("Access refused (403/404, sampled)"),
                 "slide.viewed": _l("Slide viewed (sampled)"), "case.view_slides": _l("Viewer opened"),
                 "report.viewed": _l("Report viewed"), "login": _l("Logged in"), "login.failed": _l("Login failed"),
                 "logout": _l("Logged out"), "user.subspecialties": _l("Subspecialties changed"),
                 "slide.rejected": _l("Slide rejected at inspection"),
                 "slide.export_dicom": _l("Slide downloaded as DICOM"),
                 "institution.time_zone": _l("Institution time zone changed")}
#: What an entry is about, in the reader's language (the id follows).
OBJECT_LABELS = {"annotation": _l("annotation"), "audit_checkpoint": _l("audit checkpoint"), "case": _l("case"),
                 "consultation": _l("consultation request"), "institution": _l("institution"),
                 "report": _l("report"), "slide": _l("slide"), "upload": _l("upload"), "user": _l("user")}
#: One-click filters on the audit page (action prefixes).
QUICK_FILTERS = ("access.refused", "slide.viewed", "login.failed")

PAGE_SIZE = 100
#: Entries re-verified on every page view; the full chain is checked on demand (button / CLI).
RECENT_CHECK = 1000



def _filter_args() -> dict:
    return {k: request.args.get(k, "") for k in ("case", "user", "action", "from", "to")}


@bp.route("/audit")
@authorize("audit.view")
def audit_page():
    args = _filter_args()
    error = None
    try:
        flt = audit.build_filter(args)
    except ValidationFailed as exc:
        error = _("Dates must be given as YYYY-MM-DD, and the start date must not be after the end date.") \
            if exc.code in ("invalid_date", "invalid_date_range") else message_of(exc)
        flt = None
    number = request.args.get("page", "1")
    number = int(number) if number.isdigit() and 0 < int(number) < 1_000_000 else 1
    shown = audit_browse.browse(flt, number=number, size=PAGE_SIZE, recent=RECENT_CHECK)
    query = {k: v for k, v in args.items() if v}
    return render_template("admin_audit.html", entries=shown.entries, has_next=shown.has_next, page=number,
                           args=args, query=query, error=error, recent=shown.recent, recent_window=RECENT_CHECK,
                           case_numbers=shown.case_numbers, institutions=shown.institutions,
                           canonical_time=audit.canonical_time), (422 if error else 200)


@bp.route("/audit/verify", methods=["POST"])
@authorize("audit.view")
def audit_verify():
    """Check the entire chain now (seconds for ~10^5 entries) and report the result on the page."""
    report = audit_browse.verify_all(me(), ip=client_ip())
    if report.intact:
        flash(_("Audit chain intact: %(n)s entries checked.", n=report.checked), "success")
    else:
        flash(_("Audit chain broken at entry %(id)s (%(n)s entries checked): %(reason)s",
                id=report.broken_id, n=report.checked,
                reason=_("entry modified") if report.problem == "modified"
                else _("entry deleted, inserted or reordered before it")), "error")
    return redirect(url_for("audit.audit_page"))


@bp.route("/audit.csv")
@authorize("audit.view")
def audit_csv():
    """The filtered trail as CSV (UTF-8 with BOM so Excel shows Chinese), streamed; the export is audited."""
    flt = audit.build_filter(_filter_args())
    audit_browse.start_export(me(), flt, ip=client_ip())

    def generate() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        yield "\ufeff"
        for n, row in enumerate(audit_browse.export_rows(flt), start=1):
            writer.writerow(row)
            if n % 500 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Type": "text/csv; charset=utf-8",
                             "Content-Disposition": f'attachment; filename="audit-{stamp}.csv"',
                             "Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_global(lambda a: ACTION_LABELS.get(a, ""), "audit_action_label")
    app.add_template_global(lambda o: OBJECT_LABELS.get(o, o), "audit_object_label")
    app.add_template_global(QUICK_FILTERS, "audit_quick_filters")
