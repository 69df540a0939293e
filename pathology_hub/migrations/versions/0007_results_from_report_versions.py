"""results: one source of truth for clinical text; acknowledgements per report version

The result of a consultation is now read only from the signed report versions
(``pathology_hub.domain.results``).  ``consultations.opinion`` was a copy of version 1's
diagnosis, written once at signing, never updated by an amendment, and copied onto the
escalating district's request, where it showed the expert's diagnosis under the district
pathologist's name.  This revision removes it and makes acknowledgement a record of its own.

Decisions about existing data (upgrade):

* ``opinion`` backed by a report version (equal to the diagnosis of a signed or superseded
  version of the report that answers the request: its own or its escalation's), or a mere
  copy of an escalation's opinion, is dropped: the versions hold it, with signer and dates.
* ``opinion`` backed by nothing (written without a signed report, e.g. data from before
  reports existed) is not a signed result and must not be shown as one, but it is clinical
  text and is not thrown away: it is kept in the request's history as a
  ``legacy_opinion`` event (comment = the text, actor = the assignee who recorded it, time =
  ``reported_at``), shown in the history table and labelled "not a signed result".
* ``preliminary_opinion`` is the district pathologist's own statement and stays theirs.  It
  was stored twice (on the district's request and on the escalation that carried it); it now
  lives once, on the escalation.  A parent's copy equal to a child's text is cleared; a
  parent's text no child carries is moved to its newest escalation when that one has none,
  else left where it is.
* ``follow_up_advice`` equal to the recommendations of a signed version of the answering
  report was a copy made at signing and is cleared (pages show the version in force's
  recommendations); advice typed by hand when returning a result is kept.
* ``result_acknowledgements`` is filled for every acknowledged referral: the version in
  force at ``acknowledged_at`` (latest signed no later than it), by the actor of the last
  ``acknowledge`` event.  Where a later version has been signed since (the defect this
  revision fixes: the clinician acknowledged version 1, then an amendment came), that
  acknowledgement does not cover the version in force: the chain goes back to ``returned``
  with a ``result_amended`` event, so the clinician is asked to read and confirm it.

Downgrade re-creates ``opinion`` from the latest signed diagnosis of the answering report and
drops ``result_acknowledgements``; it does not restore the duplicated preliminary opinions,
the cleared follow-up advice or the states changed above.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 09:00:00
"""
from __future__ import annotations

import datetime as dt

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

consultations = sa.table(
    'consultations', sa.column('id', sa.Integer), sa.column('parent_id', sa.Integer), sa.column('state', sa.String),
    sa.column('assignee_id', sa.Integer), sa.column('created_by_id', sa.Integer),
    sa.column('preliminary_opinion', sa.Text), sa.column('opinion', sa.Text), sa.column('follow_up_advice', sa.Text),
    sa.column('reported_at', sa.DateTime(timezone=True)), sa.column('updated_at', sa.DateTime(timezone=True)),
    sa.column('acknowledged_at', sa.DateTime(timezone=True)))
events = sa.table(
    'consultation_events', sa.column('id', sa.Integer), sa.column('consultation_id', sa.Integer),
    sa.column('transition', sa.String), sa.column('from_state', sa.String), sa.column('to_state', sa.String),
    sa.column('actor_id', sa.Integer), sa.column('at', sa.DateTime(timezone=True)), sa.column('reason', sa.Text),
    sa.column('comment', sa.Text))
reports = sa.table('reports', sa.column('id', sa.Integer), sa.column('consultation_id', sa.Integer))
versions = sa.table(
    'report_versions', sa.column('id', sa.Integer), sa.column('report_id', sa.Integer),
    sa.column('number', sa.Integer), sa.column('status', sa.String), sa.column('diagnosis', sa.Text),
    sa.column('recommendations', sa.Text), sa.column('signed_at', sa.DateTime(timezone=True)))
acks = sa.table(
    'result_acknowledgements', sa.column('consultation_id', sa.Integer), sa.column('version_id', sa.Integer),
    sa.column('user_id', sa.Integer), sa.column('at', sa.DateTime(timezone=True)))


def _utc(value):
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class _Chain:
    """The consultations, their children and the signed versions of each one's report, loaded once."""

    def __init__(self, conn) -> None:
        self.rows = {r.id: r for r in conn.execute(sa.select(consultations))}
        self.children: dict[int, list[int]] = {}
        for r in sorted(self.rows.values(), key=lambda r: r.id):
            if r.parent_id is not None:
                self.children.setdefault(r.parent_id, []).append(r.id)
        report_of = {r.consultation_id: r.id for r in conn.execute(sa.select(reports))}
        signed: dict[int, list] = {}
        for v in conn.execute(sa.select(versions).where(versions.c.status.in_(('signed', 'superseded')))
                              .order_by(versions.c.number)):
            signed.setdefault(v.report_id, []).append(v)
        self.signed_of = {cid: signed.get(rid, []) for cid, rid in report_of.items()}

    def below(self, cid: int) -> list[int]:
        out, frontier = [], [cid]
        while frontier:
            item = frontier.pop(0)
            out.append(item)
            frontier.extend(self.children.get(item, []))
        return out

    def answering_versions(self, cid: int) -> list:
        """Signed versions of the report answering ``cid`` (own first, then escalations, breadth first)."""
        for item in self.below(cid):
            if self.signed_of.get(item):
                return self.signed_of[item]
        return []


def upgrade() -> None:
    op.create_table('result_acknowledgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consultation_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id'], name=op.f('fk_result_acknowledgements_consultation_id_consultations')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_result_acknowledgements_user_id_users')),
    sa.ForeignKeyConstraint(['version_id'], ['report_versions.id'], name=op.f('fk_result_acknowledgements_version_id_report_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_acknowledgements')),
    sa.UniqueConstraint('consultation_id', 'version_id', name='uq_result_acknowledgements_consultation_version')
    )
    with op.batch_alter_table('result_acknowledgements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_acknowledgements_consultation_id'), ['consultation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_acknowledgements_version_id'), ['version_id'], unique=False)

    conn = op.get_bind()
    chain = _Chain(conn)
    now = dt.datetime.now(dt.timezone.utc)
    _keep_unbacked_opinions(conn, chain)
    _single_preliminary_opinions(conn, chain)
    _clear_copied_advice(conn, chain)
    _acknowledgements_per_version(conn, chain, now)

    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.drop_column('opinion')


def _keep_unbacked_opinions(conn, chain: _Chain) -> None:
    for r in chain.rows.values():
        text = (r.opinion or '').strip()
        if not text:
            continue
        if any(v.diagnosis.strip() == text for v in chain.answering_versions(r.id)):
            continue  # backed by a signed version
        if any((chain.rows[k].opinion or '').strip() == text for k in chain.below(r.id)[1:]):
            continue  # a copy of an escalation's opinion: kept there
        conn.execute(events.insert().values(
            consultation_id=r.id, transition='legacy_opinion', from_state=r.state, to_state=r.state,
            actor_id=r.assignee_id, at=r.reported_at or r.updated_at, reason='', comment=r.opinion))


def _single_preliminary_opinions(conn, chain: _Chain) -> None:
    for r in chain.rows.values():
        text = r.preliminary_opinion or ''
        kids = chain.children.get(r.id, [])
        if not text or not kids:
            continue
        if any(chain.rows[k].preliminary_opinion == text for k in kids):
            conn.execute(consultations.update().where(consultations.c.id == r.id).values(preliminary_opinion=''))
        elif not chain.rows[kids[-1]].preliminary_opinion:
            conn.execute(consultations.update().where(consultations.c.id == kids[-1]).values(preliminary_opinion=text))
            conn.execute(consultations.update().where(consultations.c.id == r.id).values(preliminary_opinion=''))


def _clear_copied_advice(conn, chain: _Chain) -> None:
    for r in chain.rows.values():
        advice = (r.follow_up_advice or '').strip()
        if advice and any(v.recommendations.strip() == advice for v in chain.answering_versions(r.id)):
            conn.execute(consultations.update().where(consultations.c.id == r.id).values(follow_up_advice=''))


def _acknowledgements_per_version(conn, chain: _Chain, now: dt.datetime) -> None:
    for r in chain.rows.values():
        if r.parent_id is not None or r.acknowledged_at is None:
            continue
        signed = chain.answering_versions(r.id)
        if not signed:
            continue
        at = _utc(r.acknowledged_at)
        read = [v for v in signed if v.signed_at is not None and _utc(v.signed_at) <= at] or signed[:1]
        version = read[-1]
        actor = conn.execute(sa.select(events.c.actor_id).where(
            events.c.consultation_id == r.id, events.c.transition == 'acknowledge')
            .order_by(events.c.at.desc(), events.c.id.desc()).limit(1)).scalar()
        user_id = actor or r.created_by_id
        conn.execute(acks.insert().values(consultation_id=r.id, version_id=version.id, user_id=user_id, at=at))
        latest = signed[-1]
        if latest.id == version.id:
            continue
        # Version N was acknowledged, a later one is in force: ask for the acknowledgement again.
        for cid in chain.below(r.id):
            item = chain.rows[cid]
            if item.state != 'acknowledged':
                continue
            conn.execute(consultations.update().where(consultations.c.id == cid).values(state='returned',
                                                                                         updated_at=now))
            conn.execute(events.insert().values(
                consultation_id=cid, transition='result_amended', from_state='acknowledged', to_state='returned',
                actor_id=None, at=now, reason='version %d was acknowledged; version %d is in force (migration 0007)'
                % (version.number, latest.number), comment='v%d' % latest.number))


def downgrade() -> None:
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opinion', sa.Text(), nullable=False, server_default=''))
    conn = op.get_bind()
    chain = _Chain(conn)
    for r in chain.rows.values():
        signed = chain.answering_versions(r.id)
        if signed:
            conn.execute(consultations.update().where(consultations.c.id == r.id)
                         .values(opinion=signed[-1].diagnosis))
    with op.batch_alter_table('result_acknowledgements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_acknowledgements_version_id'))
        batch_op.drop_index(batch_op.f('ix_result_acknowledgements_consultation_id'))
    op.drop_table('result_acknowledgements')
