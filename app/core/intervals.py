"""Candle widths, named once (no numpy, pyarrow or DuckDB here: the CLI's parser reads
them for ``candles --interval`` without importing a query engine)."""

# Candle widths (seconds). Buckets are aligned on the IST clock: 1h candles start at
# 09:00, 10:00, ... IST; 1d is the IST calendar (trading) day.
INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
