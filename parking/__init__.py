"""Parking domain: occupancy of berths and car parks, later sessions and tariffs."""
