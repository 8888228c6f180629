"""``python -m geosr``: the geosr command line."""

from geosr.cli import run

run()
