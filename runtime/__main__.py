"""`python -m runtime FOLDER --csv OUT.csv`, the same as `bt-classify`."""

from runtime.cli import main

main()
