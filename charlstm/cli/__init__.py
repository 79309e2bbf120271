"""The command line: `charlstm train | sample | eval | runs | inspect | report` and the views
`neurons | gates | gradients | gradcheck`. The only package that imports typer.

A thin layer. Each command parses its options into a config (charlstm/config/ holds every
default), calls the library and renders what it returns through cli/ui/; library modules
are imported inside the commands, so `--help` is fast. Errors rise out of the commands and are
turned into one red line on stderr and an exit code in one place (`exits.run`: 1 failed, 2 bad
usage, 130 interrupted).

    app.py       the app, its commands in order, and `main` (the `charlstm` script)
    exits.py     every error as one line; click's usage errors reworded to name the option
    about.py     what --version says: the version and the optional parts present
    help.py      help shown one way: '(default: X)', flags without placeholders, TEXT_FILE
    options.py   options declared from config fields, choices, the options commands share
    render.py    notes on stderr, JSON and reports on stdout, a closed pipe ended quietly
    train.py     train (Ctrl-C and SIGTERM, --log-json)
    sample.py    sample            eval.py      eval (and --show)
    inspect.py   inspect, runs     report.py    report
    understanding.py   neurons, gates, gradients, gradcheck (docs/understanding.md)
    ui/          the terminal: console, progress, tables, charts, shading, wording (Rich lives here)
"""

from charlstm.cli.app import app, main

__all__ = ["app", "main"]
