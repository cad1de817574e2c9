"""Batch exports: a project's model copied, interval by interval of ingestion time, to a customer's folder or
bucket, so that the union of all intervals' files is exactly the table (see docs/batch-exports.md)."""
