"""oiradar: OI, price, funding and liquidations -> market regimes (short covering first)."""

__version__ = "0.1.0"
