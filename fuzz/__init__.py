"""Fuzz targets for every codec and parser at the gateway's edge, and the runner behind
``make fuzz`` (``python -m fuzz``); docs/fuzzing.md says what counts as a crash.

A target is a name, a hypothesis strategy (mutations of real valid samples plus random
input) and a check that calls the real parser: an accepted input or the parser's typed
rejection (counted by its reason) is fine, any other exception is a crash.
"""
