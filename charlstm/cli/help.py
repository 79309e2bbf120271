"""One way to show help everywhere, applied to the click command that Typer builds: flags without
a value placeholder, every default as '(default: X)' at the end of its option's help, brackets
shown as typed, and arguments in usage lines as TEXT_FILE or [PATH]."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

_MARKUP = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")  # what Rich would read as a style tag, as rich.markup.escape finds it


def plain_flags(command: Any) -> None:
    """Show on/off options (and -h/--help) in help without a value placeholder such as <bool>."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    get_help_option = command.get_help_option

    def plain_help_option(ctx: Any) -> Any:
        option = get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = plain_help_option
    for sub in getattr(command, "commands", {}).values():
        plain_flags(sub)


def plain_help(command: Any) -> None:
    """Every default as '(default: X)' at the end of its option's help, as config.field_help
    writes them (not Typer's '[default: X]'); brackets in help shown as typed ('charlstm[fast]',
    which Rich would read as a style tag and drop); and arguments in usage lines as TEXT_FILE or
    [PATH] (not Typer's '{text_file}'), a hidden one not at all."""
    for param in command.params:
        if param.help:
            param.help = _MARKUP.sub(r"\1\1\\\2", param.help)
        if (
            getattr(param, "show_default", False) is True
            and not getattr(param, "is_flag", False)
            and param.default is not None
        ):
            shown = getattr(param.default, "value", param.default)
            param.help = f"{param.help or ''} (default: {shown})".lstrip()
            param.show_default = False
        if param.param_type_name == "argument":
            param.get_usage_pieces = partial(_usage_pieces, param)
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


def _usage_pieces(param: Any, ctx: Any) -> list[str]:
    """An argument as a usage line shows it: TEXT_FILE, [PATH], [CORPUS]...; a hidden one not at all."""
    if param.hidden:
        return []
    name = param.name.upper() + ("..." if param.nargs != 1 else "")
    return [name if param.required else f"[{name}]"]
