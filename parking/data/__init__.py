"""Data shipped with the parking package (the sample town's posted tariff)."""
