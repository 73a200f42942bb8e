"""`python -m attentionlite` (and `torchrun -m attentionlite train ...`): the CLI."""

from attentionlite.cli import main

main()
