"""A whole HTML email around some content: one centred column, styles inline on each element.

Mail clients drop or rewrite `<style>` blocks and ignore most layout CSS (Gmail strips `<style>` in many
views, Outlook lays out with Word), so every style is a `style` attribute, the layout is a table 600 px wide,
and colours have enough contrast without images. The title is the heading, once; the plain-text part is the
caller's own.
"""

from __future__ import annotations

from html import escape

FONT = "font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
TEXT = f"{FONT};font-size:15px;line-height:1.5;color:#1f2328"
MUTED = f"{FONT};font-size:13px;line-height:1.5;color:#59636e"
LINK = "color:#0969da;text-decoration:underline"
CELL = f"{TEXT};padding:6px 8px;border-bottom:1px solid #e1e4e8;text-align:left"
NOTE = f"{TEXT};padding:10px 14px;border-radius:6px"
NOTICE = f"{NOTE};background:#fff8c5;border:1px solid #d4a72c"
ALERT = f"{NOTE};background:#ffebe9;border:1px solid #ff8182"
COLUMN, PADDING = 600, 28
CONTENT_WIDTH = COLUMN - 2 * PADDING  # what an image may fill


def html_email(title: str, content: str) -> str:
    """`content` (already escaped HTML) under `title`, as a complete document."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        '<body style="margin:0;padding:0;background:#f4f5f7">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f5f7">'
        '<tr><td align="center" style="padding:24px 12px">'
        f'<table role="presentation" width="{COLUMN}" cellpadding="0" cellspacing="0" style="width:100%;'
        f'max-width:{COLUMN}px;background:#ffffff;border:1px solid #e1e4e8;border-radius:8px">'
        f'<tr><td style="padding:24px {PADDING}px;{TEXT}">'
        f'<h1 style="{FONT};font-size:20px;line-height:1.3;margin:0 0 16px;color:#1f2328">{escape(title)}</h1>'
        f"{content}</td></tr></table></td></tr></table></body></html>"
    )


def paragraph(html: str, style: str = TEXT) -> str:
    return f'<p style="margin:0 0 14px;{style}">{html}</p>'


def link(url: str, label: str) -> str:
    return f'<a href="{escape(url)}" style="{LINK}">{escape(label)}</a>'


def table(header: list[str], rows: list[list[str]]) -> str:
    """Cells are escaped HTML; numbers right-aligned by the caller's choice of column (the last ones)."""
    head = "".join(f'<th style="{CELL};font-weight:600">{escape(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="{CELL}">{cell}</td>' for cell in row) + "</tr>" for row in rows)
    return (f'<table role="presentation" cellpadding="0" cellspacing="0" style="border-collapse:collapse;'
            f'width:100%;margin:0 0 14px"><tr>{head}</tr>{body}</table>')


def image(src: str, alt: str, *, href: str | None = None) -> str:
    """A picture as wide as the column: Outlook sizes by the `width` attribute, other clients by the style.
    With `href`, clicking it opens that page."""
    picture = (f'<img src="{escape(src)}" alt="{escape(alt)}" width="{CONTENT_WIDTH}" style="display:block;'
               f'width:100%;max-width:{CONTENT_WIDTH}px;height:auto;border:0;margin:0 0 14px">')
    return picture if href is None else f'<a href="{escape(href)}" style="display:block;border:0">{picture}</a>'


def rule() -> str:
    """A thin line before a footer (a bare `<hr>` is drawn differently by every client)."""
    return '<hr style="border:0;border-top:1px solid #e1e4e8;margin:20px 0">'
