"""Pure spiking dynamics (``if_``, ``lif``, ``plif``) and network-wide helpers (``net``)."""
from .dynamics import *  # noqa: F401,F403
from .net import *  # noqa: F401,F403
