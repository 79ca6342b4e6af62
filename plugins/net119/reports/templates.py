"""The Jinja environment of station reports and notice letters.

HTML templates (``*.html.j2``) are autoescaped, because user names, addresses
and bounce diagnostics are inserted into them. Text templates are not.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2


@lru_cache(maxsize=8)
def environment(template_dir: Path) -> jinja2.Environment:
    """Return the environment that loads templates from ``template_dir``.

    Raises ``FileNotFoundError`` naming the folder when it does not exist.
    """
    if not template_dir.is_dir():
        raise FileNotFoundError(
            f"template folder {template_dir} not found: set NET119_TEMPLATE_DIR"
        )
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html")),
        trim_blocks=True,
        lstrip_blocks=True,
    )
