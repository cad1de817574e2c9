"""The one `MetaData` every app-database table is declared on (the package's modules, by domain); Alembic
compares the migrated schema against it."""

import sqlalchemy as sa

metadata = sa.MetaData()
