"""The device and town directory: town, sites and berths, devices, chargers, tokens."""
