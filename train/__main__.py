"""`python -m brain_tumor_edge.train ...` is `bt-train ...`; torchrun launches it with `-m`."""

from .cli import train_main

train_main()
