"""Images of insights and dashboards: full-page PNGs drawn by Debian's Chromium through pyppeteer.

`browser` (PngRenderer, widths) -> `pool` (one reused Chromium, warm tabs, crash recovery) -> `capture` (one
render on a tab) -> `chromium` (start and stop the process); `devtools` and `errors` serve them all.
"""
