from tests.ingest.conftest import demo_case_id, synthetic_slide  # noqa: F401 - shared fixtures
