"""Device protocols: sans-I/O codecs plus thin asyncio transports. Nothing of the domain here."""
