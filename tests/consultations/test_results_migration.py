"""Migration 0007 on data written the old way: the copied ``opinion`` column goes, nothing clinical is lost,
and an acknowledgement of a version that an amendment has since replaced no longer counts."""

from __future__ import annotations

import datetime as dt
import itertools

import sqlalchemy as sa

from pathology_hub.migrate import upgrade

T0 = dt.datetime(2026, 5, 1, 8, 0)
_n = itertools.count(1)


def _insert(conn, meta, name: str, **values) -> int:
    """One row with every NOT NULL column filled (unique dummy values unless given)."""
    table = meta.tables[name]
    row = {}
    for col in table.columns:
        if col.name in values or col.primary_key or col.nullable:
            continue
        py = col.type.python_type if not isinstance(col.type, sa.Enum) else str
        if isinstance(col.type, sa.Enum):
            row[col.name] = col.type.enums[0]
        elif py is int:
            row[col.name] = 1
        elif py is bool:
            row[col.name] = False
        elif py is float:
            row[col.name] = 0.0
        elif py is dt.datetime:
            row[col.name] = T0
        else:
            row[col.name] = f"x{next(_n)}"
    row.update(values)
    return conn.execute(table.insert().values(**row)).inserted_primary_key[0]


def test_0007_keeps_clinical_text_and_asks_again_for_an_outdated_acknowledgement(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0006")
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        inst = _insert(conn, meta, "institutions", code="UNIV")
        expert = _insert(conn, meta, "users", username="expert", institution_id=inst, full_name="Dr Chen")
        district = _insert(conn, meta, "users", username="district", institution_id=inst, full_name="Dr Zhang")
        clinician = _insert(conn, meta, "users", username="clin", institution_id=inst, full_name="Dr Wang")
        case = _insert(conn, meta, "cases", institution_id=inst, created_by_id=clinician)
        common = dict(case_id=case, requesting_institution_id=inst, receiving_institution_id=inst,
                      question="q", subspecialty="", cancel_reason="", paused_intervals="[]",
                      created_by_id=clinician, created_at=T0, updated_at=T0)
        # root (district) acknowledged version 1; the expert's child report was amended afterwards
        root = _insert(conn, meta, "consultations", **common, state="acknowledged", assignee_id=district,
                       preliminary_opinion="ADH?", opinion="ADH", follow_up_advice="Refer.",
                       reported_at=T0, acknowledged_at=T0 + dt.timedelta(hours=1))
        child = _insert(conn, meta, "consultations", **{**common, "created_by_id": district}, parent_id=root,
                        state="acknowledged", assignee_id=expert, preliminary_opinion="ADH?", opinion="ADH",
                        follow_up_advice="Refer.", reported_at=T0, acknowledged_at=T0 + dt.timedelta(hours=1))
        report = _insert(conn, meta, "reports", consultation_id=child, case_id=case, created_by_id=expert)
        v1 = _insert(conn, meta, "report_versions", report_id=report, number=1, kind="original", status="superseded",
                     diagnosis="ADH", recommendations="Refer.", author_id=expert, signed_by_id=expert,
                     signed_at=T0, superseded_at=T0 + dt.timedelta(days=1), superseded_by_number=2,
                     verification_code=None)
        _insert(conn, meta, "report_versions", report_id=report, number=2, kind="amendment", status="signed",
                diagnosis="Invasive carcinoma", recommendations="Surgery.", author_id=expert, signed_by_id=expert,
                signed_at=T0 + dt.timedelta(days=1), verification_code=None)
        _insert(conn, meta, "consultation_events", consultation_id=root, transition="acknowledge",
                from_state="returned", to_state="acknowledged", actor_id=clinician, at=T0 + dt.timedelta(hours=1),
                reason="", comment="")
        # a request answered before signed reports existed: its opinion is backed by no version
        legacy = _insert(conn, meta, "consultations", **common, state="returned", assignee_id=district,
                         preliminary_opinion="", opinion="Chronic gastritis (typed, never signed)",
                         follow_up_advice="Typed advice.", reported_at=T0)
    upgrade(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    c, ev, acks = meta.tables["consultations"], meta.tables["consultation_events"], meta.tables["result_acknowledgements"]
    with engine.connect() as conn:
        assert "opinion" not in c.columns
        rows = {r.id: r for r in conn.execute(sa.select(c))}
        # the acknowledgement belongs to version 1; version 2 is in force, so the chain asks again
        assert [(a.consultation_id, a.version_id, a.user_id) for a in conn.execute(sa.select(acks))] == [
            (root, v1, clinician)]
        assert rows[root].state == "returned" and rows[child].state == "returned"
        amended = conn.execute(sa.select(ev.c.consultation_id).where(ev.c.transition == "result_amended")).scalars()
        assert sorted(amended) == [root, child]
        # the preliminary opinion lives once, on the escalation that carried it
        assert (rows[root].preliminary_opinion, rows[child].preliminary_opinion) == ("", "ADH?")
        # copied advice is cleared (the version in force has its own); typed advice stays
        assert rows[root].follow_up_advice == "" and rows[legacy].follow_up_advice == "Typed advice."
        # an opinion backed by no signed version is kept in the history, labelled as such, not as a result
        kept = conn.execute(sa.select(ev).where(ev.c.transition == "legacy_opinion")).all()
        assert [(e.consultation_id, e.comment, e.actor_id) for e in kept] == [
            (legacy, "Chronic gastritis (typed, never signed)", district)]
    engine.dispose()
