"""One service package per capability: the I/O that joins a pure book to storage and the bus."""
