"""The renewal web app: the page that the link in each reminder opens.

``create_app()`` builds a FastAPI app with ``GET`` and ``POST /renew/{token}``.
Airflow's API server serves it under ``/net119`` through
``plugins/net119_renewal_plugin.py``; ``python -m net119.web`` serves it alone
with uvicorn, for a deployment behind a reverse proxy.
"""

from net119.web.app import create_app
from net119.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]
