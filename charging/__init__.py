"""EV chargers: OCPP central system, charger health and charging bills (issue 5)."""
