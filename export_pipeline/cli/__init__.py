"""`export-pipeline`: set up, seed, manage members, request exports and follow them.

Exit codes: 0 success, 1 the export (or command) failed, 2 invalid input (an unknown id too) or refused access,
3 `export --wait --timeout` stopped waiting (the export goes on).
"""

from __future__ import annotations

import click

from export_pipeline.cli import accounts, admin, batch_exports, exports, insights, subscriptions
from export_pipeline.cli.common import ExplainedErrors


@click.group(cls=ExplainedErrors)
@click.version_option(package_name="export_pipeline", prog_name="export-pipeline")
def main() -> None:
    """Export product-analytics events from ClickHouse to files, through Dagster."""


for module in (admin, exports, accounts, insights, subscriptions, batch_exports):
    for command in module.COMMANDS:
        main.add_command(command)
