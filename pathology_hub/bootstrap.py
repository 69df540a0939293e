"""Where the application is wired: the one module that knows every layer.

Called by :func:`pathology_hub.app.create_app` (web processes and every ``flask``
command) and by the worker's tasks (``tasks.py``, also when a task runs in a bare
``python -c`` process). It

* opens the database engine and the process-wide handles (``runtime``),
* registers the job handlers (ingest, tile) and their failure hooks with ``domain.jobs``,
* registers the policy's extension points (who else sees a case, whether a report is signed),
  so that ``policy.can`` answers the same whichever modules happen to be imported,
* hands the domain its ports: how to enqueue a job and how to dispatch notifications
  (the Huey tasks), so no domain module imports ``tasks``,
* builds the tus server (``upload_server.py``) on first use.

Every step is idempotent: tests build many apps in one process.
"""

from __future__ import annotations

from huey.exceptions import HueyException

from . import db, runtime, upload_server
from .config import Settings
from .domain import consultations, frozen, jobs, notifications, passwords, policy, reports, tile_render
from .domain import slides as slide_service
from .domain.dicom import catalogue as dicom_catalogue
from .domain.dicom.annotation_series import annotation_series
from .domain.hl7 import outbox as hl7_outbox
from .uploads.tus import TusServer


def wire(settings: Settings | None = None) -> None:
    """Configure this process for ``settings`` and register everything (again, harmlessly)."""
    settings = settings or runtime.settings()
    db.init_engine(settings.database_url)
    passwords.configure(settings.argon2_time_cost, settings.argon2_memory_kib)
    runtime.init(settings)
    upload_server.reset()
    register_job_handlers()
    register_policy()
    register_ports()


def ensure_wired() -> None:
    """For the worker's tasks: wire from the environment unless this process already is."""
    if db._engine is None:
        wire(runtime.settings())
    else:  # the engine exists (create_app ran, or a test opened it): the registrations may not have
        register_job_handlers()
        register_policy()
        register_ports()


def register_job_handlers() -> None:
    jobs.register_handler("ingest", slide_service.run_ingest)
    jobs.register_handler("tile", slide_service.run_tiling)
    jobs.register_failure_hook("ingest", slide_service.mark_job_failed)
    jobs.register_failure_hook("tile", slide_service.mark_job_failed)
    jobs.register_handler(frozen.SMS_JOB, frozen.run_sms)
    jobs.register_failure_hook(frozen.SMS_JOB, frozen.sms_failed)
    jobs.register_handler(hl7_outbox.JOB_KIND, hl7_outbox.run_send_job)
    jobs.register_failure_hook(hl7_outbox.JOB_KIND, hl7_outbox.send_job_failed)


def register_policy() -> None:
    policy.register_case_access(consultations.case_access_grant)
    policy.install_report_signed(reports.case_report_signed)
    dicom_catalogue.register_series_provider(annotation_series)  # DICOMweb lists annotations beside slides


def register_ports() -> None:
    from . import tasks  # the Huey tasks bind to the queue when imported; only the wiring imports them

    def enqueue(job_id: int, delay: float | None = None) -> None:
        if delay:
            tasks.run_job_task.schedule((job_id,), delay=delay)
        else:
            tasks.run_job_task(job_id)

    def render_on_worker(uid: str, version: int, level: int, col: int, row: int, wait_seconds: float) -> bool:
        try:
            return bool(tasks.render_tile_task(uid, version, level, col, row).get(
                blocking=True, timeout=wait_seconds, revoke_on_timeout=True))
        except HueyException:  # timed out, or the task failed (logged by the worker)
            return False

    jobs.set_enqueuer(enqueue)
    notifications.set_dispatcher(tasks.deliver_notifications_task)
    tile_render.set_render_requester(render_on_worker)


def tus_server() -> TusServer:
    """The deployment's tus server (built on first use for the current settings)."""
    return upload_server.server()
