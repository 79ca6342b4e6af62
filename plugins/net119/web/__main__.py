"""Serve the renewal pages with uvicorn: ``python -m net119.web``.

The app is mounted under ``--prefix`` (default ``/net119``), the path of the
default ``NET119_RENEWAL_BASE_URL``. It reads X-Forwarded-For only from the
peers listed in ``NET119_TRUSTED_PROXIES``, so uvicorn's own proxy-header
handling is turned off.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from net119.web.app import DATABASE_URL_ENV


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m net119.web",
        description="Serve the NET119 renewal pages (GET and POST <prefix>/renew/<token>).",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000,
                        help="TCP port to listen on (default: 8000)")
    parser.add_argument("--prefix", default="/net119",
                        help="URL path the pages are served under (default: /net119)")
    parser.add_argument("--database-url",
                        help=f"libpq URL of the database (default: ${DATABASE_URL_ENV}, "
                             "else the net119_db Airflow connection)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"],
                        help="log level of the server (default: info)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from net119.web.app import create_app
    from net119.web.settings import WebSettings

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Read the settings now, so that an invalid value stops the server at start.
    try:
        settings = WebSettings.from_env()
    except ValueError as exc:
        print(f"python -m net119.web: {exc}", file=sys.stderr)
        return 2
    prefix = "/" + args.prefix.strip("/") if args.prefix.strip("/") else ""
    renewal_app = create_app(settings, database_url=args.database_url)
    app = Starlette(routes=[Mount(prefix, app=renewal_app)]) if prefix else renewal_app
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        proxy_headers=False,
        server_header=False,
        log_level=args.log_level,
        log_config=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
