"""A stateful OpenStack API simulator on loopback HTTP, for testing releasectl (stdlib only).

Start it from Python (``Simulator(...).start()``), from pytest (``fixtures.py``) or by hand
(``python -m tests.openstack_sim --port 8777``). See ``simulator.py`` for the Python API.
"""

from .simulator import Options, Simulator

__all__ = ["Options", "Simulator"]
