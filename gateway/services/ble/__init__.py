"""BLE configuration of berth sensors: the bleak edge (``link``) and its failures (``errors``)."""
