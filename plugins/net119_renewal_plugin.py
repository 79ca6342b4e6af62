"""Airflow plugin that serves the renewal page at ``/net119/renew/<token>``.

Airflow's plugin manager imports this file in every Airflow component, so it
only builds the app: ``create_app()`` reads no setting and opens no database
connection until the API server handles the first request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from net119.web import create_app


class Net119RenewalPlugin(AirflowPlugin):
    name = "net119_renewal"
    fastapi_apps = [
        {"app": create_app(), "url_prefix": "/net119", "name": "NET119 renewal"},
    ]
