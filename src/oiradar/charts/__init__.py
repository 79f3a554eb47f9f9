"""`oiradar chart`: gather one symbol's history (`data`) and draw it as PNG (`png`) or
interactive HTML (`html`). matplotlib and plotly are imported only by the drawing modules,
so the rest of the CLI never pays for them."""
