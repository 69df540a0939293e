"""Demo data for ``make run``: the three tiers, one user per role, a demo case.

Idempotent: running it again finds what exists and creates only what is missing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .domain import accounts
from .models import Case, Institution, Priority, Sex, Tier, User

DEMO_PASSWORD = "demo-pass-2026"

INSTITUTIONS = [
    ("UNIV", "省医科大学附属医院 Provincial University Hospital", Tier.UNIVERSITY, []),
    ("DIST1", "东城区人民医院 Dongcheng District Hospital", Tier.DISTRICT, ["UNIV"]),
    ("DIST2", "西城区人民医院 Xicheng District Hospital", Tier.DISTRICT, ["UNIV"]),
    ("COMM1", "和平社区卫生服务中心 Heping Community Health Centre", Tier.COMMUNITY, ["DIST1"]),
    ("COMM2", "光明社区卫生服务中心 Guangming Community Health Centre", Tier.COMMUNITY, ["DIST2"]),
]

USERS = [
    ("admin", "系统管理员 Admin", "admin", "DIST1", ""),
    ("tech", "李技师 Li (technician)", "technician", "COMM1", ""),
    ("clinician", "王医生 Wang (clinician)", "clinician", "COMM1", ""),
    ("pathologist", "张病理 Zhang (pathologist)", "pathologist", "DIST1", "gastrointestinal,breast"),
    ("expert", "陈教授 Chen (university expert)", "pathologist", "UNIV", "gastrointestinal"),
    ("tech2", "赵技师 Zhao (technician)", "technician", "COMM2", ""),
]


def ensure_demo_data(session: Session) -> list[tuple[str, str, str]]:
    """Create what is missing and return (username, role, institution) of the demo logins."""
    by_code = {i.code: i for i in session.scalars(select(Institution))}
    for code, name, tier, refers in INSTITUTIONS:
        if code not in by_code:
            by_code[code] = accounts.create_institution(session, code=code, name=name, tier=tier, refers_to=refers)
    logins = []
    for username, full_name, role, inst_code, subs in USERS:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            user = accounts.create_user(session, username=username, full_name=full_name, password=DEMO_PASSWORD,
                                        role=role, institution=by_code[inst_code], subspecialties=subs)
        logins.append((username, role, inst_code))
    tech = session.scalar(select(User).where(User.username == "tech"))
    clinician = session.scalar(select(User).where(User.username == "clinician"))
    if session.scalar(select(Case).where(Case.case_number == "DEMO-2026-001")) is None:
        session.add(Case(institution_id=tech.institution_id, case_number="DEMO-2026-001",
                         patient_pseudo_id="P-7F3A21", sex=Sex.FEMALE, age_years=56,
                         clinical_history="胃窦溃疡，活检。Gastric antrum ulcer, endoscopic biopsy; rule out carcinoma.",
                         specimen_type="Biopsy 活检", specimen_site="Gastric antrum 胃窦", priority=Priority.URGENT,
                         requesting_clinician_id=clinician.id, created_by_id=tech.id))
    session.flush()
    return logins


DEMO_SLIDES = [("DEMO-2026-001-A1.svs", 12000, 9000, 11, "H&E"), ("DEMO-2026-001-A2.svs", 9000, 7000, 12, "H&E")]


def ensure_demo_slides(session: Session, store, work_dir, echo=print) -> None:
    """Generate synthetic H&E slides for the demo case and ingest and tile them now.

    They go through the real job handlers (inline, so the viewer works as soon as the
    server starts); a later delivery of the same jobs by the queue finds them done.
    """
    from pathlib import Path

    from .db import SessionLocal
    from .domain import jobs
    from .domain import slides as slide_service
    from .models import Job, JobState, Slide
    from .slides.synthetic import write_synthetic_slide

    case = session.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))
    tech = session.scalar(select(User).where(User.username == "tech"))
    existing = {s.original_filename for s in session.scalars(select(Slide).where(Slide.case_id == case.id))}
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    for name, width, height, seed, stain in DEMO_SLIDES:
        if name in existing:
            continue
        echo(f"generating demo slide {name} ({width} x {height} px, 0.25 µm/px)…")
        path = write_synthetic_slide(work_dir / name, width, height, mpp=0.25, tissue_fraction=0.45, seed=seed)
        slide_service.add_local_file(session, store, case, tech, path, stain=stain, consume=True)
        path.unlink(missing_ok=True)
    session.commit()
    for _ in range(10):
        queued = list(session.scalars(select(Job.id).where(Job.state == JobState.QUEUED)))
        if not queued:
            break
        for job_id in queued:
            jobs.run(lambda: SessionLocal.session_factory(), job_id)
        session.expire_all()


DEMO_CONSULTATIONS = [
    # case number, priority, target state, clinical question
    ("DEMO-C-001", Priority.ROUTINE, "triage", "乳腺肿块穿刺：良恶性？Breast core biopsy: benign or malignant?"),
    ("DEMO-C-002", Priority.URGENT, "in_review", "结肠息肉：异型增生分级？Colon polyp: grade of dysplasia?"),
    ("DEMO-C-003", Priority.ROUTINE, "info_requested", "胃黏膜活检：幽门螺杆菌？Gastric biopsy: H. pylori?"),
    ("DEMO-C-004", Priority.URGENT, "escalated", "淋巴结：淋巴瘤待排。Lymph node: rule out lymphoma."),
    ("DEMO-C-005", Priority.ROUTINE, "returned", "皮肤病损：基底细胞癌？Skin lesion: basal cell carcinoma?"),
]


def ensure_demo_consultations(session: Session) -> None:
    """Consultations in several states on new demo cases, driven through the real state machine.

    The demo cases have no slides, so submission uses the state machine's
    ``skip_slide_check_for_demo_seed`` path, which exists only for this function.
    Idempotent: a demo case that exists is left as it is.
    """
    from .domain import consultations as svc

    users = {u.username: u for u in session.scalars(select(User))}
    tech, clinician, pathologist = users["tech"], users["clinician"], users["pathologist"]
    for number, priority, target, question in DEMO_CONSULTATIONS:
        if session.scalar(select(Case).where(Case.case_number == number)) is not None:
            continue
        case = Case(institution_id=tech.institution_id, case_number=number, patient_pseudo_id=f"P-{number[-3:]}C",
                    sex=Sex.UNKNOWN, clinical_history=question, specimen_type="Biopsy 活检", priority=priority,
                    requesting_clinician_id=clinician.id, created_by_id=tech.id)
        session.add(case)
        session.flush()
        c = svc.create(session, tech, case, {"question": question})
        svc.submit(session, tech, c, skip_slide_check_for_demo_seed=True)
        if target == "triage":
            continue
        svc.assign(session, pathologist, c, pathologist.id)
        svc.accept(session, pathologist, c)
        if target == "info_requested":
            svc.request_info(session, pathologist, c, "请补做 PAS 染色。Please add a PAS stain.")
        elif target == "escalated":
            svc.escalate(session, pathologist, c, "倾向反应性增生，需免疫组化。Favour reactive hyperplasia; needs IHC.")
        elif target == "returned":
            _sign_demo_report(session, pathologist, c)
    session.flush()


def _sign_demo_report(session: Session, pathologist: User, c) -> None:
    """A real signed report (PDF, PAdES signature, verification code): signing reports and returns the result."""
    from .domain import reports
    report = reports.create(session, pathologist, c)
    draft = reports.update_draft(session, pathologist, report, {
        "specimen": "皮肤活检 Skin punch biopsy, left cheek",
        "microscopic_description": "基底样细胞结节状增生，周边栅栏状排列，可见收缩间隙。"
                                   "Nodules of basaloid cells with peripheral palisading and retraction clefts.",
        "diagnosis": "基底细胞癌，结节型。Nodular basal cell carcinoma.", "diagnosis_code": "8097/3",
        "answer_to_question": "是，基底细胞癌。Yes, basal cell carcinoma.",
        "recommendations": "建议完整切除。Complete excision advised.",
    }, revision=report.versions[0].revision)
    reports.sign(session, pathologist, report, password=DEMO_PASSWORD, revision=draft.revision)
