"""Renderers (interface side): a `services.chart.ChartData` drawn as PNG (`png`,
`png_panels`) or interactive HTML (`html`, `html_panels`) with what both share in `style`,
and a backtest drawn as one HTML page (`report`). matplotlib and plotly are imported only
when drawing, so the rest of the CLI never pays for them; services never import these."""
