"""geosr."""
