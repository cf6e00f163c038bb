"""Transforms: frozen, composable callables on ``EVENT_DTYPE`` arrays (see ``docs/transforms.md``).

Representations (``ToFrame``, ``ToVoxelGrid``, ...) live in ``representations.py``; augmentations
and filters (``Denoise``, ``DropEvent``, ...) in ``augment.py`` and ``filters.py``; ``Compose`` and
slicing in ``compose.py``. Each is a thin wrapper over a pure function in ``neurodata.functional``.
"""
from .compose import *  # noqa: F401,F403
from .representations import *  # noqa: F401,F403
from .filters import *  # noqa: F401,F403
from .augment import *  # noqa: F401,F403
