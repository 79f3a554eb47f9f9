"""The local exchange: Binance, Bybit, OKX and Bitget public market data on a simulated clock.

It never imports `oiradar.venues` (and they never import it): two independent readings of
the venue documentation, so a parser bug cannot be mirrored here and pass unnoticed.
"""
