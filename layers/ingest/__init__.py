"""Ingest: read agencies' files (shapefile zips, GeoPackage, GeoJSON, KML/KMZ, CSV) into layers."""
