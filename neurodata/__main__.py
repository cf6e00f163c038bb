"""``python -m neurodata ...``: the ``neurodata`` command, where its script is not on ``PATH``."""
from .cli import main

main(prog_name="neurodata")
