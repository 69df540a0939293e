"""Gunicorn entry point: ``gunicorn wsgi:app`` (settings in gunicorn.conf.py)."""

from pathology_hub.app import create_app

app = create_app()
