"""``python -m diffusion_sim``: the same command line as ``diffusion-sim``."""

from .cli import main

main()
