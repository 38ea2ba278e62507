"""GIS core of gis_service: layer kinds, stores, sample data. Never imports Flask."""
