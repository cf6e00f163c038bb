"""Pure spiking dynamics (``if_``, ``lif``, ``plif``) and network-wide helpers (``net``)."""
from .net import *  # noqa: F401,F403
