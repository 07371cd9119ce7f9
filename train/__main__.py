"""`python -m brain_tumor_edge.train ...` is `bt-train ...`; torchrun launches it with `-m`."""

from brain_tumor_edge.train.cli import train_main

train_main()
