"""BLE configuration of berth sensors, sans-I/O: the per-model GATT characteristic map
(``charmap``), advertisement parsing (``advert``) and what a configuration writes and how its
read-back is judged (``plan``). No bleak here: the I/O is ``gateway.services.ble``."""
