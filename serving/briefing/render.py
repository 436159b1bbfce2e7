"""The briefing as HTML (Jinja2) and PDF (Playwright printing in Chromium).

``render_html`` gives one self-contained page: no script at all, the plots as SVG. For a
file (``healthos briefing --out FILE.html``) the style sheet and the SVG are inline; for
the API (``GET /api/v1/briefing``) the style sheet is linked (``style_href``) and the
plots are ``data:`` images, so the page needs no inline style under a strict
Content-Security-Policy. ``render_pdf`` prints the file form on A4.
"""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Final, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from healthos_core.errors import InvalidInputError
from healthos_core.kpis import Kpi
from healthos_core.settings import get_settings
from reasoning.briefing import Briefing
from serving.briefing.plots import collections_svg, occupancy_svg, waits_svg

__all__ = [
    "OUTPUT_FORMATS",
    "briefing_css",
    "format_value",
    "output_format",
    "render_html",
    "render_pdf",
    "trend",
]

#: File extensions ``healthos briefing --out`` writes.
OUTPUT_FORMATS: Final = (".html", ".pdf")
_LEVEL_ORDER: Final = {"region": 0, "network": 1, "facility": 2}
_AUDIENCE_TITLES: Final = {
    "clinician": "Clinicians",
    "nurse": "Nurses",
    "finance": "Finance",
    "operations": "Operations",
    "leadership": "Leadership",
}


def output_format(path: Path) -> Literal["html", "pdf"]:
    """Return the format of ``path`` by its extension.

    Raises
    ------
    InvalidInputError
        If the extension is not ``.html`` or ``.pdf``.
    """
    suffix = path.suffix.lower()
    if suffix == ".html":
        return "html"
    if suffix == ".pdf":
        return "pdf"
    raise InvalidInputError(
        f"--out {str(path)!r}: unknown extension {suffix or '(none)'!r}; "
        f"write {' or '.join(OUTPUT_FORMATS)}"
    )


def format_value(value: float | Decimal | None, unit: str, currency: str | None = None) -> str:
    """Format a KPI value for a reader: ratios as %, money with its ISO 4217 code.

    Examples
    --------
    >>> format_value(0.875, "ratio")
    '87.5%'
    >>> format_value(54286.61, "currency", "USD")
    '54,286.61 USD'
    >>> format_value(None, "days")
    '—'
    """
    if value is None:
        return "—"
    number = float(value)
    if unit == "ratio":
        return f"{number:.1%}"
    if unit == "currency":
        return f"{number:,.2f} {currency}" if currency else f"{number:,.2f}"
    if unit == "count":
        return f"{number:,.0f}"
    if unit == "minutes":
        return f"{number:,.1f} min"
    if unit == "days":
        return f"{number:,.2f} days"
    return f"{number:,.2f}"


def trend(value: float | None, before: float | None, unit: str, better: str) -> dict[str, str]:
    """Return the arrow, the change and whether it is good, of ``value`` against ``before``.

    Returns
    -------
    dict
        ``arrow`` (▲ up, ▼ down, ▬ unchanged, ``""`` when either is unknown), ``change``
        (percentage points for ratios) and ``tone``: ``good`` when the change goes the KPI's
        ``better`` way, ``bad`` the other way, ``flat`` otherwise.

    Examples
    --------
    >>> trend(0.9, 0.8, "ratio", "higher")
    {'arrow': '▲', 'change': '+10.0 pp', 'tone': 'good'}
    """
    if value is None or before is None:
        return {"arrow": "", "change": "no comparison", "tone": "flat"}
    change = value - before
    if abs(change) < 1e-9:
        return {"arrow": "▬", "change": "unchanged", "tone": "flat"}
    arrow = "▲" if change > 0 else "▼"
    good = (change > 0) == (better == "higher")
    if unit == "ratio":
        text = f"{100 * change:+.1f} pp"
    elif unit == "count":
        text = f"{change:+,.0f}"
    elif unit == "minutes":
        text = f"{change:+,.1f} min"
    else:
        text = f"{change:+,.2f}"
    return {"arrow": arrow, "change": text, "tone": "good" if good else "bad"}


def _on_target(kpi: Kpi) -> str:
    if kpi.value is None or kpi.target is None:
        return ""
    met = kpi.value >= kpi.target if kpi.better == "higher" else kpi.value <= kpi.target
    return "met" if met else "missed"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("serving.briefing", "templates"),
        autoescape=select_autoescape(("html", "j2")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["value"] = format_value
    env.globals.update(
        trend=trend, on_target=_on_target, audience_titles=_AUDIENCE_TITLES, timedelta=dt.timedelta
    )
    return env


def briefing_css() -> str:
    """Return the briefing's style sheet (``templates/briefing.css``)."""
    return (resources.files("serving.briefing") / "templates" / "briefing.css").read_text("utf-8")


def _plot(svg: str | None, alt: str, inline: bool) -> Markup | None:
    if svg is None:
        return None
    if inline:
        return Markup(svg)  # noqa: S704 - matplotlib's own SVG output, no user text unescaped
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return Markup('<img class="plot" alt="{}" src="data:image/svg+xml;base64,{}">').format(
        alt, data
    )


def render_html(briefing: Briefing, *, style_href: str | None = None) -> str:
    """Render the briefing as one HTML page (no script).

    Parameters
    ----------
    briefing : Briefing
        From :func:`reasoning.briefing.build_briefing`.
    style_href : str, optional
        Link this style sheet and embed the plots as ``data:`` images (the served form);
        default: the style sheet and the SVG plots inline (a self-contained file).

    Returns
    -------
    str
        The page, readable on screen and printed on A4.
    """
    inline = style_href is None
    names = {s.id: s.name for s in briefing.kpis.scopes}
    scopes = sorted(briefing.kpis.scopes, key=lambda s: (_LEVEL_ORDER[s.level], s.name, s.id))
    plots = {
        "occupancy": _plot(
            occupancy_svg(briefing.bed_pools, names), "Bed occupancy per pool", inline
        ),
        "waits": _plot(waits_svg(briefing.queue_waits), "Mean wait by hour of arrival", inline),
        "collections": _plot(
            collections_svg(briefing.collections, briefing.currency),
            "Cash posted per day and collections over 30 days",
            inline,
        ),
    }
    definitions = scopes[0].kpis if scopes else ()
    return (
        _environment()
        .get_template("briefing.html.j2")
        .render(
            b=briefing,
            scopes=scopes,
            names=names,
            plots=plots,
            definitions=definitions,
            css=Markup(briefing_css()) if inline else None,  # noqa: S704 - our own file
            style_href=style_href,
        )
    )


def render_pdf(html: str, *, chromium: Path | None = None) -> bytes:
    """Print ``html`` to an A4 PDF with Playwright in the machine's Chromium.

    Parameters
    ----------
    html : str
        A self-contained page (:func:`render_html` without ``style_href``).
    chromium : Path, optional
        The Chromium executable (default the setting ``HEALTHOS_CHROMIUM_PATH``,
        ``/usr/bin/chromium``: Debian's ``chromium`` package). Playwright's own browser
        downloads are not used.

    Returns
    -------
    bytes
        The PDF document (``%PDF-`` ...).

    Raises
    ------
    InvalidInputError
        If Playwright is not installed (``pip install 'healthos[pdf]'``) or the Chromium
        executable is missing (``apt-get install chromium``, or set
        ``HEALTHOS_CHROMIUM_PATH``).
    """
    executable = chromium or get_settings().chromium_path
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise InvalidInputError(
            "PDF output needs Playwright: pip install 'healthos[pdf]' (or write .html)"
        ) from None
    if not executable.is_file():
        raise InvalidInputError(
            f"PDF output needs Chromium at {executable} (HEALTHOS_CHROMIUM_PATH): "
            "apt-get install chromium, or set HEALTHOS_CHROMIUM_PATH (or write .html)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable))
        try:
            page = browser.new_page()
            page.set_content(html, wait_until="load")
            return page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
        finally:
            browser.close()
