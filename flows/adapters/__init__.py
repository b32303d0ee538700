"""Adapters: the I/O behind the flows — output storage (local, S3), the VOC sources (CSV,
PostgreSQL), review backends (XLSX workbook, Google Sheets), the model store and the retry policy."""
