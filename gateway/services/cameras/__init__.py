"""Plate camera reads: evidence files, the durable read store, and the default decider."""
