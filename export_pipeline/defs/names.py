"""The names Dagster knows our definitions by, written once: the definitions, the run queue, the GraphQL
client and the CLI all refer to them, and a rename must reach every one."""

CODE_LOCATION = "export_pipeline"
REPOSITORY = "__repository__"  # the repository Dagster makes of a code location's `Definitions`

EXPORT_JOB = "export_job"
EXPORT_OP = "event_export"  # the export job's asset, and the key of its run config under `ops`
EXPORT_PARTITIONS = "export_requests"
DELIVERY_JOB = "subscription_delivery_job"
DELIVERY_ASSET = "subscription_delivery"
BATCH_EXPORT_ASSET = "batch_export"
DESTINATIONS_PARTITIONS = "batch_export_destinations"
