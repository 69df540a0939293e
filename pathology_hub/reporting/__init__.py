"""Report documents: PDF rendering (CJK fonts embedded), PAdES signing and validation, figures.

Pure library code: no Flask, no database session. ``domain/reports/`` builds a
:class:`~pathology_hub.reporting.document.ReportDocument` from the database and hands it here.
"""
