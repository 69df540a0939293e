"""Translatable names of enum values shown in pages (``_(case.priority.value)``).

Listing them here lets ``pybabel extract`` find strings that templates only
build at run time.
"""

from flask_babel import lazy_gettext as _l

ENUM_LABELS = [
    _l("routine"), _l("urgent"), _l("frozen"),
    _l("female"), _l("male"), _l("other"), _l("unknown"),
    _l("community"), _l("district"), _l("university"),
    _l("technician"), _l("pathologist"), _l("clinician"), _l("admin"),
    _l("inspecting"), _l("rejected"), _l("tiling"), _l("ready"), _l("failed"),
]
