"""Time-series forecasting: a window of recent history in, the next steps' quantiles out.

Data: CSV/TSV/Parquet files (one series or many, wide or long layout) and real series
that ship with statsmodels (``--data builtin``); see ``data.py``.
"""
