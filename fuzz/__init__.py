"""Fuzz targets for callway's parsers (atheris entry points and their shared checks)."""
