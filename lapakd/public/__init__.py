"""The public list: a static site, open data and statistics, built from a whitelist.

`model.py` is the only code that reads the store for publication (never sender fields; all
citizen text through `lapakd.redact.redact`); `export.py` renders and swaps the site in.
"""
