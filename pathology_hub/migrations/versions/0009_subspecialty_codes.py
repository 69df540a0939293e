"""subspecialties become codes of a controlled vocabulary (data only)

``consultations.subspecialty`` and ``users.subspecialties`` held free text, and automatic
assignment compared it verbatim: a request typed "消化病理" matched no profile tagged
"gastrointestinal" and could not be assigned.  This revision rewrites every value that
names an entry of the configured list (SUBSPECIALTIES_FILE, default
pathology_hub/domain/subspecialties.json) by its code, zh/en label or an alias to that
code.  A value that names nothing is kept as written: pages show it as stored, it matches
no profile, and triage can still assign any pathologist (with a note).  Downgrade keeps
the codes: they are valid free text.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 10:00:00
"""
import logging

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    from pathology_hub.domain.subspecialties import PROFILE_LIMIT, all_subspecialties, match_text

    items = all_subspecialties()
    conn = op.get_bind()
    unmapped: set[str] = set()

    consultations = sa.table('consultations', sa.column('id', sa.Integer), sa.column('subspecialty', sa.String))
    for row in conn.execute(sa.select(consultations.c.id, consultations.c.subspecialty)
                            .where(consultations.c.subspecialty != '')):
        code = match_text(row.subspecialty, items)
        if code is None:
            unmapped.add(row.subspecialty)
        elif code != row.subspecialty:
            conn.execute(consultations.update().where(consultations.c.id == row.id).values(subspecialty=code))

    users = sa.table('users', sa.column('id', sa.Integer), sa.column('subspecialties', sa.String))
    order = {s.code: n for n, s in enumerate(items)}
    for row in conn.execute(sa.select(users.c.id, users.c.subspecialties).where(users.c.subspecialties != '')):
        parts = [p.strip() for p in row.subspecialties.replace('，', ',').replace('、', ',').split(',') if p.strip()]
        codes: list[str] = []
        for part in parts:
            code = match_text(part, items)
            if code is None:
                unmapped.add(part)
                code = part
            if code not in codes:
                codes.append(code)
        codes.sort(key=lambda c: order.get(c, len(order)))
        stored = ','.join(codes)[:PROFILE_LIMIT]
        if stored != row.subspecialties:
            conn.execute(users.update().where(users.c.id == row.id).values(subspecialties=stored))
    if unmapped:
        log.warning("subspecialties not in the configured list, kept as written: %s", sorted(unmapped))


def downgrade() -> None:
    pass
