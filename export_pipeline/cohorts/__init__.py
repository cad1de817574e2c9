"""Cohorts: groups of persons, static (a list of person ids) or dynamic (a definition evaluated in ClickHouse
as of each request). Stored in the app database (db/tables.py `cohorts`, `cohort_people`)."""
