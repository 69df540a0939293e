"""Browser: the assigned pathologist opens the case from the consultation, fills the report beside the
viewer, captures a key view, signs with the password and sees the signed state; a second editor's stale
autosave shows the conflict message instead of overwriting."""

from __future__ import annotations


from sqlalchemy import select

from pathology_hub.models.consultations import Consultation
from pathology_hub.models.reports import ReportFigure, ReportVersion
from tests.browser_helpers import login, wait_until


def test_pathologist_writes_captures_and_signs_through_the_ui(browser, live_server, scenario, db, artifacts):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    try:
        page = login(ctx, live_server, "pathologist")
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{live_server}/consultations/{scenario.consultation_id}")
        page.click("[data-testid=open-report-editor]")
        wait_until(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded", 40)
        page.wait_for_selector("[data-testid=report-start]")
        assert page.is_visible("[data-testid=report-panel]")
        page.click("[data-testid=report-start]")
        page.wait_for_selector("[data-testid=report-field-diagnosis]")
        page.fill("[data-testid=report-field-microscopic_description]", "Nests of atypical ductal cells.")
        page.fill("[data-testid=report-field-diagnosis]", "Invasive ductal carcinoma / 浸润性导管癌")
        page.select_option("[data-testid=report-field-diagnosis_code]", "8500/3")
        page.fill("[data-testid=report-field-recommendations]", "Refer to breast surgery.")
        wait_until(page, "document.querySelector('[data-testid=report-save-state]').classList.contains('report-ok')")
        db.expire_all()
        v = db.scalars(select(ReportVersion)).one()
        assert v.diagnosis == "Invasive ductal carcinoma / 浸润性导管癌" and v.diagnosis_code == "8500/3"

        # a second, stale editor (another tab) is refused and told so
        other = ctx.new_page()
        other.goto(f"{live_server}/cases/{scenario.case_id}/viewer")
        other.wait_for_selector("[data-testid=report-field-comment]")
        page.fill("[data-testid=report-field-comment]", "from tab one")
        wait_until(page, "document.querySelector('[data-testid=report-save-state]').textContent.length > 0 && "
                         "document.querySelector('[data-testid=report-save-state]').classList.contains('report-ok')")
        other.fill("[data-testid=report-field-comment]", "from tab two")
        other.wait_for_selector("[data-testid=report-conflict]")
        db.expire_all()
        assert db.scalars(select(ReportVersion)).one().comment == "from tab one"
        other.close()

        # key view
        vb = page.evaluate("() => { const b = pathologyViewer.viewer.viewport.getBounds(true); "
                           "return [b.x, b.y, b.x + b.width, b.y + b.height]; }")
        page.fill("[data-testid=report-figure-caption]", "Invasive nests")
        page.click("[data-testid=report-capture]")
        page.wait_for_selector("[data-testid=report-figure] img")
        wait_until(page, "document.querySelector('[data-testid=report-figure] img').naturalWidth > 100")
        fig = db.scalars(select(ReportFigure)).one()
        assert fig.caption == "Invasive nests" and fig.magnification.endswith("×")
        # the figure is exactly the visible region of the slide pane (level-0 px; the slide is 1600 px wide)
        import json
        got, want = json.loads(fig.bounds), [v * 1600 for v in vb]
        assert all(abs(g - w) <= 0.02 * (want[2] - want[0]) for g, w in zip(got, want)), (got, want)

        page.screenshot(path=str(artifacts / "report-draft-in-viewer.png"))
        # wrong password first, then the right one
        page.fill("[data-testid=report-password]", "not-my-password")
        page.click("[data-testid=report-sign-button]")
        wait_until(page, "document.querySelector('[data-testid=report-sign-error]').textContent.length > 0")
        assert "invalid_password" in page.text_content("[data-testid=report-sign-error] [data-testid=error-code]")
        page.fill("[data-testid=report-password]", "demo-pass-2026")
        page.click("[data-testid=report-sign-button]")
        page.wait_for_selector("[data-testid=report-signature]", timeout=60000)
        assert page.text_content("[data-testid=report-status]").strip() in ("signed", "已签发", "已签署")
        assert page.is_visible("[data-testid=report-pdf]") and page.is_visible("[data-testid=report-verification]")
        assert page.query_selector("[data-testid=report-field-diagnosis]") is None  # read-only now
        page.screenshot(path=str(artifacts / "report-signed-in-viewer.png"))
        db.expire_all()
        assert db.scalars(select(ReportVersion)).one().status == "signed"
        assert db.get(Consultation, scenario.consultation_id).state.value == "returned"

        # the verification page (no login) confirms it
        code = page.text_content("[data-testid=report-verification]").strip()
        anon = browser.new_context().new_page()
        anon.goto(f"{live_server}/verify/{code}")
        assert "Verified" in anon.text_content("[data-testid=verify-outcome]") or \
            "验证" in anon.text_content("[data-testid=verify-outcome]")
        assert "浸润性导管癌" not in anon.content() and "Invasive ductal" not in anon.content()
        anon.screenshot(path=str(artifacts / "report-verify-page.png"), full_page=True)
        anon.context.close()
        page.goto(f"{live_server}/reports/{db.scalars(select(ReportVersion)).one().report_id}")
        assert "浸润性导管癌" in page.text_content("[data-testid=report-diagnosis-1]")
        page.screenshot(path=str(artifacts / "report-page.png"), full_page=True)
        assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
    finally:
        ctx.close()
