"""The morning briefing rendered: HTML (Jinja2), SVG plots (matplotlib), PDF (Playwright).

The content comes from :func:`reasoning.briefing.build_briefing`; ``healthos briefing``
and ``GET /api/v1/briefing`` render it here (``docs/briefing.md``).
"""

from serving.briefing.render import (
    OUTPUT_FORMATS,
    briefing_css,
    format_value,
    output_format,
    render_html,
    render_pdf,
    trend,
)

__all__ = [
    "OUTPUT_FORMATS",
    "briefing_css",
    "format_value",
    "output_format",
    "render_html",
    "render_pdf",
    "trend",
]
