"""Annotations and measurements on slides: validation, storage, versioned edits, QuPath exchange.

Coordinates are full-resolution slide pixels, origin top-left, as GeoJSON geometry
(Point, MultiPoint, LineString, Polygon, MultiPolygon; ellipses and rectangles are
polygons with ``shape`` kept for the editor).  Decisions worth knowing:

* Edits are optimistic: every change names the version it was based on and the
  check sits in the UPDATE's WHERE clause, so of two concurrent writers exactly
  one wins and the other gets 409 with the current annotation, never a silent overwrite.
* Deletion is soft (``deleted_at``): the record stays for the audit trail.
* Classes must come from the palette when created or changed through the API;
  QuPath imports keep the file's own class names and colours (imported files
  bring their own classification, and mapping them to "other" would lose it).
* Import ids (QuPath UUIDs) are kept when they do not collide on the target slide
  (deleted annotations included), otherwise a new UUID is given and reported.
* Comments are stored exactly as typed; escaping is the browser's job.

Package layout (one job per module):

* :mod:`.palette` — the class palette and class colours;
* :mod:`.geometry` — GeoJSON structure, validity and bounds checks; the slide's frame;
* :mod:`.features` — the GeoJSON text of an annotation (API answer, stored list text);
* :mod:`.cache` — per-process cache of serialised features for the list;
* :mod:`.queries` — who may see annotations, viewport queries, the list of a slide;
* :mod:`.writes` — REST create / update / delete with optimistic locking;
* :mod:`.qupath_format` — the QuPath GeoJSON dialects (pure, no database);
* :mod:`.import_export` — importing and exporting a slide's annotations as QuPath GeoJSON;
* :mod:`.errors` — the version conflict and version-required refusals.

Callers keep using ``from pathology_hub.domain import annotations as service``: the public names
are re-exported here.  (Size limits that tests lower are read from the module that uses them:
``geometry.MAX_VERTICES``, ``import_export.MAX_IMPORT_FEATURES``; the web layer reads
``MAX_BODY_BYTES`` and ``MAX_IMPORT_BYTES`` from this package.)
"""

from __future__ import annotations

from pathology_hub.domain.annotations.errors import VersionConflict, VersionRequired
from pathology_hub.domain.annotations.features import feature_dict, feature_json_text, list_text_of
from pathology_hub.domain.annotations.geometry import (GEOMETRY_TYPES, MAX_VERTICES, CheckedGeometry, SlideFrame,
                                                       check_geometry)
from pathology_hub.domain.annotations.import_export import (MAX_IMPORT_BYTES, MAX_IMPORT_FEATURES,
                                                            MAX_REPORTED_ERRORS, ImportResult,
                                                            export_collection_text, import_features,
                                                            parse_json_document)
from pathology_hub.domain.annotations.palette import (DEFAULT_CLASSES, PaletteMisconfigured, annotation_classes,
                                                      palette_color)
from pathology_hub.domain.annotations.qupath_format import FeatureError
from pathology_hub.domain.annotations.queries import get_annotation, list_collection_text, parse_bbox
from pathology_hub.domain.annotations.writes import (MAX_BODY_BYTES, create_annotation, delete_annotation,
                                                     resolve_version, update_annotation)

__all__ = [
    "DEFAULT_CLASSES", "GEOMETRY_TYPES", "MAX_BODY_BYTES", "MAX_IMPORT_BYTES", "MAX_IMPORT_FEATURES",
    "MAX_REPORTED_ERRORS", "MAX_VERTICES", "CheckedGeometry", "FeatureError", "ImportResult",
    "PaletteMisconfigured", "SlideFrame", "VersionConflict", "VersionRequired", "annotation_classes",
    "check_geometry", "create_annotation", "delete_annotation", "export_collection_text", "feature_dict",
    "feature_json_text", "get_annotation", "import_features", "list_collection_text", "list_text_of",
    "palette_color", "parse_bbox", "parse_json_document", "resolve_version", "update_annotation",
]
