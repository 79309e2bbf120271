"""`python -m charlstm` runs the command-line interface."""

from charlstm.cli import main

main()
