"""`oiradar serve`: the web dashboard (JSON API, live table, symbol view, alert feed)."""
