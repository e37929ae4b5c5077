"""One module per protocol family; each exports ``TARGETS``, a tuple of fuzz targets."""
