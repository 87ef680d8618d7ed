"""Fixtures of the component tier that live in their own modules."""

from tests.component.airflow_harness import airflow_home, airflow_python, scenarios  # noqa: F401 - the Airflow examples' environment
