"""Page sweep: every HTML page, as every role, in zh-CN and in English, in Chromium at 1280×800.

A page fails on text a reader of that language cannot read (English words in zh-CN, Chinese in
English) that is not user data, on raw keys (``status_processing``, ``missing_mpp``, ``%(n)s``,
``{name}``), on horizontal overflow of the page and on visible controls whose boxes overlap.
Every page is saved as a screenshot under ``$SWEEP_ARTIFACTS`` (default ``test-artifacts/sweep``)
so a person can look at them; ``failures.txt`` there lists what failed, page by page.

The list of pages comes from the app's URL map: a new HTML route that the sweep does not visit
fails the test, so the sweep cannot silently fall behind the application.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.browser_helpers import wait_until
from tests.conftest import ROOT, Client, require

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LANGUAGES = ("zh_CN", "en")
ROLES = ("technician", "pathologist", "expert", "clinician", "admin")
LOGIN_OF = {"technician": "tech", "pathologist": "pathologist", "expert": "expert", "clinician": "clinician",
            "admin": "admin"}
VIEWPORT = {"width": 1280, "height": 800}
CHECKS_JS = (Path(__file__).parent / "page_checks.js").read_text(encoding="utf-8")

#: GET routes that answer with something other than an HTML page.
NOT_PAGES = {"static", "health.healthz", "health.readyz", "audit.audit_csv",
             "live.socket", "live.events"}  # live-session WebSocket and event stream, not pages

#: Latin words a zh-CN page may show: units, codes, file formats and names of things that are not
#: translated in Chinese pathology departments either.  Words only — never a sentence.
ZH_ALLOWED_WORDS = {
    "english",  # the language switch names the other language in that language
    "pdf", "fhir", "geojson", "qupath", "csv", "json", "icd", "dzi", "svs", "ndpi", "mrxs", "tiff", "tif", "dcm",
    "mpp", "µm", "um", "mm", "cm", "px", "ki", "ihc", "he", "pas", "her", "er", "pr", "cd", "id",
    "utc", "gmt", "asia", "shanghai", "cst", "ok", "pades", "openseadragon", "http", "https", "zip",
    "ctrl", "shift", "alt", "esc",  # key names as printed on the keyboard
}
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u3000-\u303f\uff01-\uff5e]")
EN_ALLOWED_CJK = {"中文"}  # the language switch
LATIN_WORD = re.compile(r"[A-Za-zµ][A-Za-z'’]*[A-Za-z]")
RAW_KEYS = [re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b"), re.compile(r"%\(\w+\)[sdif]"),
            re.compile(r"\{\w+\}")]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("SWEEP_ARTIFACTS") or ROOT / "test-artifacts" / "sweep")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------ the site
@dataclass
class Site:
    base: str
    app: object
    world: object  # tests.i18n.sweep_data.SweepWorld


@pytest.fixture(scope="module")
def site(database_url, tmp_path_factory):
    """One app, one demo world and one live server for the whole sweep."""
    require(Path("/usr/bin/chromium").exists(), "Debian's chromium is not installed at /usr/bin/chromium")
    require((ROOT / "pathology_hub/static/dist/viewer.js").exists(), "the viewer bundle is not built (make viewer)")
    import threading

    from werkzeug.serving import make_server

    from pathology_hub.app import create_app
    from pathology_hub.config import Settings
    from pathology_hub.db import SessionLocal
    from pathology_hub.queue import huey
    from pathology_hub.slides.synthetic import write_synthetic_slide
    from tests.conftest import _truncate_all
    from tests.i18n import sweep_data

    tmp = tmp_path_factory.mktemp("sweep")
    instance = tmp / "instance"
    instance.mkdir()
    settings = Settings(instance_path=instance, database_url=database_url,
                        storage_url=f"file://{instance / 'objects'}", queue_url=f"sqlite:///{instance / 'queue.db'}",
                        secret_key="sweep-secret-key", argon2_time_cost=1, argon2_memory_kib=8192)
    app = create_app(settings, TESTING=True)
    _truncate_all(database_url)
    huey.immediate = True
    slide = write_synthetic_slide(tmp / "SW-A1-HE.svs", 1600, 1200, mpp=0.25, tissue_fraction=0.5, seed=5)
    junk = tmp / "SW-A2-Ki67.svs"
    junk.write_bytes(b"this is not a slide scanner file\n" * 64)
    db = SessionLocal.session_factory()
    try:
        world = sweep_data.build(db, lambda name: Client(app, name), slide, junk)
    finally:
        db.close()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(f"http://127.0.0.1:{server.server_port}", app, world)
    server.shutdown()
    thread.join(timeout=5)
    huey.immediate = False
    SessionLocal.remove()


def pages(w) -> list[tuple[str, str, str, str]]:
    """(name, path, endpoint, ready-expression) of every page the sweep visits."""
    c, k = w.consultations, w.case_ids
    slide_case = k["SW-2026-0001"]
    out = [("home", "/", "main.home", ""),
           ("password", "/account/password", "auth.change_password", ""),
           ("case-new", "/cases/new", "cases.new_case", ""),
           ("case-slides-upload", f"/cases/{slide_case}", "cases.detail", "document.querySelector('#slide-rows tr')"),
           ("case-demo", f"/cases/{k['DEMO-2026-001']}", "cases.detail", ""),
           ("viewer", f"/cases/{slide_case}/viewer", "slides.viewer",
            VIEWER_READY),
           ("report-editor", f"/cases/{slide_case}/viewer?report=1", "slides.viewer",
            VIEWER_READY),
           ("report-amended", f"/reports/{w.report_ids['amended']}", "reports.report_page", ""),
           ("verify", "/verify", "reports.verify", ""),
           ("verify-current", f"/verify/{w.verification_codes['current']}", "reports.verify_code", ""),
           ("verify-superseded", f"/verify/{w.verification_codes['superseded']}", "reports.verify_code", ""),
           ("verify-unknown", "/verify/NOPE-0000", "reports.verify_code", ""),
           ("admin-users", "/admin/users", "admin.users", ""),
           ("admin-institutions", "/admin/institutions", "admin.institutions", ""),
           ("admin-audit", "/admin/audit", "audit.audit_page", ""),
           ("admin-lis", "/admin/lis", "lis_admin.page", ""),
           ("admin-on-call", "/admin/on-call", "frozen.roster", ""),
           ("turnaround", "/admin/turnaround", "consultations.turnaround_page", ""),
           ("not-found", "/no/such/page", "", "")]
    seen: set[int] = set()
    for state, cid in sorted(c.items()):
        if cid in seen:
            continue
        seen.add(cid)
        out.append((f"consultation-{state}", f"/consultations/{cid}", "consultations.detail_page", ""))
    for state in ("returned", "amended_acknowledged"):
        out.append((f"result-{state}", f"/consultations/{c[state]}/result", "consultations.result_page", ""))
    return out


#: The viewer has opened its slide and listed the annotations (tiles may still be sharpening).
VIEWER_READY = "window.pathologyViewer && pathologyViewer.viewer.world.getItemCount() > 0"

ANONYMOUS_PAGES = [("login", "/login", "auth.login", ""), ("verify-public", "/verify", "reports.verify", ""),
                   ("not-found-public", "/no/such/page", "", "")]


# ------------------------------------------------------------------ checks
def strip_user_data(text: str, user_data: list[str]) -> str:
    for value in user_data:  # longest first
        if value in text:
            text = text.replace(value, " ")
    if text.endswith("…"):  # a long value cut short for a narrow column
        head = text[:-1].strip()
        cut = head.split("·")[-1].strip()
        if cut and any(value.startswith(cut) for value in user_data):
            text = head[: len(head) - len(cut)]
    return text


def language_problems(texts: list[str], lang: str, user_data: list[str]) -> list[str]:
    problems: list[str] = []
    for raw in dict.fromkeys(texts):
        text = strip_user_data(raw, user_data)
        for pattern in RAW_KEYS:
            for key in pattern.findall(text):
                problems.append(f"raw key {key!r} in {raw[:80]!r}")
        if lang == "zh_CN":
            words = [m for m in LATIN_WORD.findall(text)
                     if any(ch.islower() for ch in m) and m.lower().strip("'’") not in ZH_ALLOWED_WORDS]
            if words:
                problems.append(f"English {' '.join(words)[:60]!r} in {raw[:80]!r}")
        else:
            rest = text
            for ok in EN_ALLOWED_CJK:
                rest = rest.replace(ok, "")
            if CJK.search(rest):
                problems.append(f"Chinese in {raw[:80]!r}")
    return problems


def layout_problems(result: dict) -> list[str]:
    problems = [f"overlap: {o}" for o in result["overlaps"]]
    o = result["overflow"]
    if o["scrollWidth"] > o["innerWidth"]:
        problems.append(f"horizontal overflow: page is {o['scrollWidth']} px wide in a {o['innerWidth']} px window")
    return problems


def visit(page, base: str, name: str, path: str, ready: str, shots: Path, tag: str, user_data, lang,
          refused_seen: set[int], errors: list[str]) -> list[str] | None:
    """Check one page; None when it is a refusal (403/404) of a kind this role has already been shown."""
    problems: list[str] = []
    errors.clear()  # script errors of this page (the listener is the page's, registered once)
    t0 = time.monotonic()
    resp = page.goto(base + path, wait_until="domcontentloaded")
    t1 = time.monotonic()
    if resp is not None and resp.status in (403, 404):
        if resp.status in refused_seen:
            return None
        refused_seen.add(resp.status)
    if resp is None or resp.status >= 500:
        problems.append(f"HTTP {resp.status if resp else '-'}")
    if ready and resp is not None and resp.status == 200:
        try:
            wait_until(page, ready, timeout=15)
        except AssertionError as exc:
            problems.append(f"page did not finish loading: {exc}")
    t2 = time.monotonic()
    result = page.evaluate(CHECKS_JS)
    t3 = time.monotonic()
    problems += language_problems(result["texts"], lang, user_data)
    problems += layout_problems(result)
    problems += [f"script error: {e}" for e in errors]
    page.screenshot(path=str(shots / f"{tag}-{name}.png"), full_page=True)
    t4 = time.monotonic()
    TIMES.append((f"{tag}-{name}", t1 - t0, t2 - t1, t3 - t2, t4 - t3))
    return problems


TIMES: list = []


def set_locale(lang: str) -> None:
    from pathology_hub.db import SessionLocal
    from pathology_hub.models import User
    db = SessionLocal.session_factory()
    try:
        db.execute(update(User).values(locale=lang))
        db.commit()
    finally:
        db.close()


def test_every_html_route_is_in_the_sweep(site):
    """A new page must join the sweep: every HTML GET route of the URL map is visited."""
    visited = {endpoint for _, _, endpoint, _ in pages(site.world) + ANONYMOUS_PAGES if endpoint}
    html = {rule.endpoint for rule in site.app.url_map.iter_rules()
            if "GET" in rule.methods and not rule.rule.startswith(("/api/", "/dicomweb/", "/iiif/"))
            and rule.endpoint not in NOT_PAGES}  # DICOMweb and IIIF answer JSON and images, not pages
    assert html - visited == set(), f"pages the sweep does not visit: {sorted(html - visited)}"
    states = {s for s in site.world.consultations}
    from pathology_hub.models.consultations import ConsultationState
    assert {s.value for s in ConsultationState} <= states, "a consultation state has no page in the sweep"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_page_sweep(site, browser, lang):
    shots = artifacts_dir()
    set_locale(lang)
    accept = "zh-CN,zh;q=0.9" if lang == "zh_CN" else "en-GB,en;q=0.9"
    failures: dict[str, list[str]] = {}
    started = time.monotonic()
    count = 0
    runs = [("anonymous", ANONYMOUS_PAGES)] + [(role, pages(site.world)) for role in ROLES]
    for role, plan in runs:
        ctx = browser.new_context(viewport=VIEWPORT, locale=lang.replace("_", "-"),
                                  extra_http_headers={"Accept-Language": accept})
        try:
            page = ctx.new_page()
            script_errors: list[str] = []
            page.on("pageerror", lambda exc, into=script_errors: into.append(str(exc)))
            if role != "anonymous":
                page.goto(f"{site.base}/login")
                page.fill("input[name=username]", LOGIN_OF[role])
                page.fill("input[name=password]", "demo-pass-2026")
                page.click("[data-testid=login-submit]")
                page.wait_for_url(f"{site.base}/")
            refused_seen: set[int] = set()
            for name, path, _endpoint, ready in plan:
                tag = f"{lang}-{role}"
                problems = visit(page, site.base, name, path, ready, shots, tag, site.world.user_data, lang,
                                 refused_seen, script_errors)
                if problems is None:  # a page this role may not open: the error page, already checked
                    continue
                count += 1
                if problems:
                    failures[f"{tag} {name} ({path})"] = problems
        finally:
            ctx.close()
    took = time.monotonic() - started
    report = [f"{count} pages in {took:.1f} s ({lang})"]
    for where, problems in failures.items():
        report.append(where)
        report.extend(f"    {p}" for p in dict.fromkeys(problems))
    (shots / f"failures-{lang}.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
    print(report[0])
    for row in sorted(TIMES, key=lambda r: -sum(r[1:]))[:10]:  # the slowest pages, to see where the time goes
        name, goto, ready, check, shot = row
        print(f"{name:45s} goto {goto:.2f} ready {ready:.2f} eval {check:.2f} shot {shot:.2f}")
    assert not failures, "\n".join(report[:400])
