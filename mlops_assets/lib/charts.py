"""Charts for Dagster metadata: small PNGs drawn on matplotlib's Agg canvas (no global pyplot
state), shown inline in a Markdown value. matplotlib is optional: without it there is no chart."""

from __future__ import annotations

import base64
import io
from typing import Any


def new_figure(width: float, height: float) -> Any | None:
    """A figure of `width` x `height` inches at 72 dpi, or None when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(width, height), dpi=72, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def markdown_image(chart: bytes | None, alt: str) -> str:
    """The chart as an inline Markdown image after a blank line; empty without a chart."""
    if not chart:
        return ""
    return f"\n\n![{alt}](data:image/png;base64,{base64.b64encode(chart).decode()})"
