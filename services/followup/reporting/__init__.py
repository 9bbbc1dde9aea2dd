"""Reporting: daily aggregates, series, exports and area summaries (issue 13)."""
