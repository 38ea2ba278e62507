"""GDAL/OGR side of store_query.py, run by benchmarks/.venv-alt's Python (Debian's osgeo).

Opens the GeoPackage once, then for each line ``minx miny maxx maxy limit`` on stdin reads
up to ``limit`` features in that box (``SetSpatialFilterRect``: the GeoPackage's R-tree,
then OGR's own envelope test) with their geometry and fields, and answers one line:
``milliseconds features outside``, timed here so that the pipe costs nothing.
"""

from __future__ import annotations

import sys
import time

from osgeo import ogr

ogr.UseExceptions()


def main() -> None:
    dataset = ogr.Open(sys.argv[1])
    layer = dataset.GetLayerByName(sys.argv[2] if len(sys.argv) > 2 else "points")
    for line in sys.stdin:
        minx, miny, maxx, maxy, limit = line.split()
        box = float(minx), float(miny), float(maxx), float(maxy)
        start = time.perf_counter()
        layer.SetSpatialFilterRect(*box)
        layer.ResetReading()
        rows = []
        for feature in layer:
            point = feature.GetGeometryRef()
            rows.append((feature.GetFID(), point.GetX(), point.GetY(), feature.items()))
            if len(rows) >= int(limit):
                break
        elapsed = (time.perf_counter() - start) * 1000
        outside = sum(1 for _, x, y, _ in rows
                      if not (box[0] <= x <= box[2] and box[1] <= y <= box[3]))
        print(f"{elapsed:.4f} {len(rows)} {outside}", flush=True)


if __name__ == "__main__":
    main()
