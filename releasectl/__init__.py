"""releasectl: blue-green and canary releases for virtual-machine clouds."""

__version__ = "0.1.0"
