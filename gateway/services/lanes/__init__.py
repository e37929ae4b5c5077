"""Car-park lanes: plate reads become session steps, exits are priced, gates are raised.

``contract`` holds the seams (what the camera route, ``gateway/api/cameras.py``, calls;
what a gate controller must do), ``camera_decider`` which decides on a camera's read,
``config`` a lane as the service holds it, ``facts`` the session step and price of a read,
``decisions`` the gate decisions in the database, ``service`` the per-lane state machine's
I/O, ``gates`` the default gate factory, ``views`` what the API shows.
"""
