"""The tiered consultation path through the UI in Debian's Chromium, one browser context per user:

technician of COMM1 → triage (admin) at DIST1 → pathologist of DIST1 (accept, request information)
→ technician answers and adds a slide → pathologist escalates with a preliminary opinion →
university expert triages (automatic assignment) and accepts → the expert writes the report
beside the slides and signs it with the password → the clinician finds the signed report in the
worklist, downloads it and confirms "I have read this result".

Every step is clicked through the real pages; each user's worklist and notification bell are
checked as they see them.  The bell polls every 30 s, so each context gets Playwright's fake
clock and the test fast-forwards it: the count changes in the open page without a reload,
which is the live update the issue asks for.  The first slide is ingested through the Python
tus helper (uploading in the browser is covered by tests/ingest/test_browser_upload.py); the
slide added on the information request goes through the upload widget.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.browser_helpers import login, wait_until

pytestmark = pytest.mark.browser

POLL_MS = 30_000  # static/js/notifications.js polls the unread count this often


@pytest.fixture(scope="module")
def faint_slide(tmp_path_factory):
    """A small slide with very little tissue: ingests fine but carries a low_tissue QC warning."""
    from pathology_hub.slides.synthetic import write_synthetic_slide
    return write_synthetic_slide(tmp_path_factory.mktemp("flow") / "faint-he.svs", 2000, 1500, mpp=0.25,
                                 tissue_fraction=0.01, seed=11)


@pytest.fixture(scope="module")
def pas_slide(tmp_path_factory):
    from pathology_hub.slides.synthetic import write_synthetic_slide
    return write_synthetic_slide(tmp_path_factory.mktemp("flow") / "recut-pas.svs", 2000, 1500, mpp=0.25,
                                 tissue_fraction=0.45, seed=12)


class User:
    """One logged-in person: a browser context with a fake clock, and their page."""

    def __init__(self, browser, base: str, username: str, errors: list[str]):
        self.name = username
        self.base = base
        self.context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
        self.context.clock.install()
        self.page = login(self.context, base, username)
        self.page.on("console", lambda m: errors.append(f"{username}: {m.text}") if m.type == "error" else None)

    def goto(self, path: str):
        return self.page.goto(f"{self.base}{path}")

    def bell(self) -> int:
        return int(self.page.text_content("[data-testid=notif-count]").strip())

    def expect_bell(self, count: int) -> None:
        """Let the bell's poll fire in the open page (no reload) and wait for the unread count."""
        before = self.page.url
        self.page.clock.run_for(POLL_MS + 1000)
        wait_until(self.page, f"document.getElementById('notif-count').textContent.trim() === '{count}'", 15)
        assert self.page.url == before  # the count changed live, not by navigating

    def state(self) -> str:
        return self.page.text_content("[data-testid=consultation-state]").strip()

    def act(self, action: str, fields: dict[str, str] | None = None, select: dict[str, str] | None = None) -> None:
        """Fill and submit one action form of the consultation page, then wait for the next page."""
        form = self.page.locator(f"[data-testid=action-{action}]")
        for name, value in (fields or {}).items():
            form.locator(f"[name={name}]").fill(value)
        for name, value in (select or {}).items():
            form.locator(f"select[name={name}]").select_option(value)
        with self.page.expect_navigation():
            form.locator("button[type=submit]").click()
        flash = self.page.locator(".flash").first.text_content()
        assert "Done" in flash, flash

    def worklist_row(self, name: str, consultation_id: int):
        return self.page.locator(f"[data-testid=worklist-{name}] tr[data-consultation-id='{consultation_id}']")

    def shot(self, artifacts, name: str) -> None:
        self.page.screenshot(path=str(artifacts / f"consultation-flow-{name}.png"), full_page=True)


def test_referral_triage_information_escalation_through_the_ui(browser, live_server, world, users, client_for,
                                                                faint_slide, pas_slide, ready_slide, artifacts):
    started = time.monotonic()
    errors: list[str] = []
    people = {n: User(browser, live_server, n, errors) for n in ("tech", "admin", "pathologist", "expert", "clinician")}
    tech, admin, path_, expert, clin = (people[n] for n in ("tech", "admin", "pathologist", "expert", "clinician"))
    try:
        for p in people.values():
            assert p.bell() == 0

        # ---- technician of COMM1 creates the case through the form
        tech.goto("/cases/new")
        tech.page.fill("input[name=case_number]", "BR-FLOW-001")
        tech.page.fill("input[name=patient_pseudo_id]", "P-BR-1")
        tech.page.fill("input[name=specimen_type]", "Biopsy 活检")
        tech.page.select_option("select[name=priority]", "urgent")
        tech.page.select_option("select[name=requesting_clinician_id]", str(users["clinician"].id))
        with tech.page.expect_navigation():
            tech.page.click("form.grid-form button[type=submit]")
        assert tech.page.text_content("[data-testid=case-number]").strip() == "BR-FLOW-001"
        case_id = int(re.search(r"/cases/(\d+)", tech.page.url).group(1))

        # A slide with a quality warning arrives (already tiled: the upload through the page follows
        # below with the PAS recut), and shows on the case page.
        ready_slide(case_id, faint_slide)
        tech.page.reload()
        assert tech.page.locator("[data-testid=slides] tr[data-slide-id]").count() == 1
        assert "Very little tissue" in tech.page.text_content("[data-testid=slides]")

        # ---- the draft request, then submission only after acknowledging the warning
        panel = tech.page.locator("[data-testid=consultations]")
        panel.locator("textarea[name=question]").fill("胃窦活检：癌？Gastric antrum biopsy: carcinoma?")
        panel.locator("select[name=subspecialty]").select_option("gastrointestinal")
        with tech.page.expect_navigation():
            panel.locator("[data-testid=create-consultation]").click()
        cid = int(re.search(r"/consultations/(\d+)", tech.page.url).group(1))
        assert tech.state() == "draft"
        submit = tech.page.locator("[data-testid=action-submit]")
        assert "low_tissue" in submit.text_content()
        checkbox = submit.locator("input[name=acknowledge_warnings]")
        submit.locator("button[type=submit]").click()  # the browser refuses: the box is required
        assert checkbox.evaluate("el => el.validity.valueMissing") and tech.state() == "draft"
        tech.shot(artifacts, "1-tech-warnings")
        checkbox.check()
        tech.act("submit")
        assert tech.state() == "in triage"
        assert "Dongcheng District Hospital" in tech.page.text_content(".facts")
        tech.goto("/")
        assert tech.worklist_row("technician", cid).count() == 0  # nothing waits on the centre now

        # ---- DIST1 triage: the admin and the pathologist are told, live; the admin assigns
        admin.expect_bell(1)
        path_.expect_bell(1)
        admin.goto("/")
        row = admin.worklist_row("triage", cid)
        assert "BR-FLOW-001" in row.text_content() and "in triage" in row.text_content()
        with admin.page.expect_navigation():
            row.locator("a").click()
        assert admin.state() == "in triage"
        admin.shot(artifacts, "2-admin-triage")
        admin.act("assign", select={"assignee_id": str(users["pathologist"].id)})
        # Triage access ends with the assignment: the admin is sent home and the row is gone.
        assert admin.page.url.rstrip("/") == live_server
        assert admin.worklist_row("triage", cid).count() == 0
        assert admin.goto(f"/consultations/{cid}").status == 404

        # ---- the DIST1 pathologist: assigned, reads the bell, accepts, asks for more
        path_.expect_bell(2)
        path_.page.click("[data-testid=notif-bell]")
        wait_until(path_.page, "document.querySelectorAll('#notif-panel .notif-item').length === 2")
        assert "Consultation assigned to you (case BR-FLOW-001)" in path_.page.text_content("#notif-panel")
        path_.page.click("#notif-panel button")  # mark all as read
        wait_until(path_.page, "document.getElementById('notif-count').textContent.trim() === '0'")
        path_.goto("/")
        assert path_.worklist_row("triage", cid).count() == 0
        row = path_.worklist_row("pathologist", cid)
        assert "assigned" in row.text_content()
        with path_.page.expect_navigation():
            row.locator("a").click()
        assert path_.state() == "assigned"
        assert "Zhang" in path_.page.text_content("[data-testid=assignee]")
        path_.act("accept")
        assert path_.state() == "in review"
        path_.act("request_info", {"comment": "请补做 PAS 染色。Please add a PAS-stained recut."})
        assert path_.state() == "information requested"
        path_.shot(artifacts, "3-pathologist-info-requested")

        # ---- the centre is told (technician and requesting clinician); the technician answers
        tech.goto("/")
        tech.expect_bell(1)
        clin.expect_bell(1)
        row = tech.worklist_row("technician", cid)
        assert "information requested" in row.text_content()
        with tech.page.expect_navigation():
            row.locator("a").click()
        assert "Please add a PAS-stained recut." in tech.page.text_content("[data-testid=history]")
        # The recut goes up through the case page's upload widget.
        with tech.page.expect_navigation():
            tech.page.click("[data-testid=action-answer_info] a")
        wait_until(tech.page, "window.pathologyUploader")
        tech.page.set_input_files("#upload-app input[type=file]", [str(pas_slide)])
        wait_until(tech.page, "pathologyUploader.uploads[0] && pathologyUploader.uploads[0].state === 'done'", 90)
        tech.page.reload()
        wait_until(tech.page, "document.querySelectorAll('[data-testid=slides] tr[data-slide-id]').length === 2")
        assert "recut-pas.svs" in tech.page.text_content("[data-testid=slides]")
        tech.goto(f"/consultations/{cid}")
        tech.act("answer_info", {"comment": "PAS 已上传。PAS recut uploaded."})
        assert tech.state() == "in review"
        tech.shot(artifacts, "4-tech-answered")

        # ---- the pathologist hears back and escalates with a preliminary opinion
        path_.goto("/")
        path_.expect_bell(1)
        with path_.page.expect_navigation():
            path_.worklist_row("pathologist", cid).locator("a").click()
        assert "PAS recut uploaded." in path_.page.text_content("[data-testid=history]")
        path_.act("escalate", {"preliminary_opinion": "倾向腺癌，需免疫组化。Favour adenocarcinoma; needs IHC."})
        assert path_.state() == "escalated"
        child_link = path_.page.locator("[data-testid=escalations] a").first
        child_id = int(re.search(r"/consultations/(\d+)", child_link.get_attribute("href")).group(1))
        assert "in triage" in path_.page.text_content("[data-testid=escalations]")
        path_.shot(artifacts, "5-pathologist-escalated")

        # ---- the university: triage (automatic assignment by subspecialty), then the expert accepts
        expert.expect_bell(1)
        expert.goto("/")
        row = expert.worklist_row("triage", child_id)
        assert "escalated" not in row.text_content() and "in triage" in row.text_content()
        assert expert.worklist_row("triage", cid).count() == 0  # the parent stays with DIST1
        with expert.page.expect_navigation():
            row.locator("a").click()
        assert "Favour adenocarcinoma; needs IHC." in expert.page.text_content("[data-testid=preliminary-opinion]")
        assert f"#{cid}" in expert.page.text_content(".facts")  # escalated from the district request
        expert.act("assign", select={"assignee_id": ""})  # automatic: least loaded gastrointestinal pathologist
        assert expert.state() == "assigned" and "Chen" in expert.page.text_content("[data-testid=assignee]")
        expert.act("accept")
        assert expert.state() == "in review"
        expert.expect_bell(2)  # the (automatic) assignment notified the assignee
        expert.goto("/")
        assert "in review" in expert.worklist_row("pathologist", child_id).text_content()
        assert expert.worklist_row("triage", child_id).count() == 0
        expert.goto(f"/consultations/{child_id}")
        expert.shot(artifacts, "6-expert-in-review")

        # The district pathologist keeps the parent and sees the child's progress; the centre sees
        # its own request as escalated.
        path_.goto(f"/consultations/{cid}")
        assert path_.state() == "escalated" and "in review" in path_.page.text_content("[data-testid=escalations]")
        tech.goto(f"/cases/{case_id}")
        assert "escalated" in tech.page.text_content("[data-testid=consultations]")

        # ---- the expert writes the report beside the slides and signs it with the password (in a
        # window without the fake clock: the viewer and the editor's autosave run on real timers)
        writer = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 900})
        try:
            ep = login(writer, live_server, "expert")
            ep.on("console", lambda m: errors.append(f"expert editor: {m.text}") if m.type == "error" else None)
            ep.goto(f"{live_server}/consultations/{child_id}")
            ep.click("[data-testid=open-report-editor]")
            wait_until(ep, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded", 40)
            ep.click("[data-testid=report-start]")
            ep.fill("[data-testid=report-field-microscopic_description]", "Atypical glands infiltrating the stroma.")
            ep.fill("[data-testid=report-field-diagnosis]", "腺癌，肠型。Adenocarcinoma, intestinal type.")
            ep.select_option("[data-testid=report-field-diagnosis_code]", "8144/3")
            ep.fill("[data-testid=report-field-recommendations]", "建议外科会诊。Refer to surgery.")
            wait_until(ep, "document.querySelector('[data-testid=report-save-state]').classList.contains('report-ok')")
            ep.fill("[data-testid=report-password]", "demo-pass-2026")
            ep.click("[data-testid=report-sign-button]")
            ep.wait_for_selector("[data-testid=report-signature]", timeout=60000)
            ep.screenshot(path=str(artifacts / "consultation-flow-8-expert-signed.png"))
        finally:
            writer.close()
        path_.goto(f"/consultations/{cid}")
        assert path_.state() == "returned"  # the district request is answered by the expert's report
        assert "Adenocarcinoma, intestinal type." in path_.page.text_content("[data-testid=result-diagnosis]")

        # ---- the centre: the clinician finds the signed report in the worklist and downloads it
        clin.goto("/")
        row = clin.worklist_row("clinician", cid)
        assert "returned" in row.text_content()
        with clin.page.expect_navigation():
            row.locator("[data-testid=worklist-report-link]").click()
        assert "Adenocarcinoma" in clin.page.text_content("[data-testid=report-diagnosis-1]")
        with clin.page.expect_download() as download:
            clin.page.click("[data-testid=report-pdf-1]")
        assert download.value.suggested_filename.endswith("-v1.pdf")
        clin.goto(f"/consultations/{cid}")
        assert clin.state() == "returned"  # reading and downloading never acknowledge
        with clin.page.expect_navigation():
            clin.page.click("[data-testid=acknowledge-button]")  # "I have read this result (version 1)"
        assert clin.state() == "acknowledged"
        clin.shot(artifacts, "9-clinician-acknowledged")

        # ---- the admin's turnaround dashboard now charts the completed stages
        admin.goto("/admin/turnaround")
        charts = admin.page.locator("[data-testid=tat-charts-institution] svg.chart")
        assert charts.count() >= 2  # submitted → assigned and assigned → accepted
        first = admin.page.locator("[data-testid=chart-institution-submitted_to_assigned]")
        assert first.locator("rect[data-series=median]").count() == 2  # DIST1 and UNIV
        admin.shot(artifacts, "7-admin-turnaround")

        assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
    finally:
        for p in people.values():
            p.context.close()
    print(f"full path through the UI in {time.monotonic() - started:.1f} s")
