"""Images of insights and dashboards: full-page PNGs drawn by Debian's Chromium through pyppeteer (`browser`)."""
