"""DJI Cloud API (docks and their aircraft over MQTT): sans-I/O cores (``envelope``,
``topics``, ``osd``, ``topology``, ``events``, ``services``, ``presence``) and the one
asyncio transport, ``link.DjiLink``."""
