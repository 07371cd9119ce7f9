"""`python -m brain_tumor_edge.runtime FOLDER --csv OUT.csv`, the same as `bt-classify`."""

from .cli import main

main()
