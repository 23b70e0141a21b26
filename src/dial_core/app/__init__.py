"""A person in the loop on their own GeoTIFF: the ``dial`` command line (:mod:`.cli`).

The modules below it work on arrays and return arrays, frames or dictionaries, so the command line
and a server share them: :mod:`.classes` (a model's class names and colours), :mod:`.raster`
(reading an image, writing class and uncertainty GeoTIFFs), :mod:`.vector` (class polygons),
:mod:`.guidance` (DIAL's next patches) and :mod:`dial_core.interactive.refine` (AC / DISCA on a
person's clicks).
"""
