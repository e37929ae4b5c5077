"""The runtime that wires citygate together: config, storage, registry, bus, API, CLI."""
