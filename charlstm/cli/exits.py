"""Every error as one line on stderr and an exit code: the library's CharLSTMError (its own code:
1 failed, 2 bad usage) and click's usage errors (a wrong type, an unknown option: 2), reworded to
name the option and end with a hint. Commands let errors rise; `run` handles them, once."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import typer

from charlstm.errors import CharLSTMError

if TYPE_CHECKING:  # Typer 0.28 keeps its own click there, privately: for the type alone
    from typer._click.exceptions import UsageError as ClickUsageError

USAGE_ERROR: type[ClickUsageError] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)  # click's, wherever Typer keeps it


def run(command: Any, args: list[str]) -> int:
    """Run the command line `args` and return its exit code; an error is one red line."""
    try:
        code = command.main(args, prog_name="charlstm", standalone_mode=False)
    except typer.Abort:
        return 1
    except CharLSTMError as exc:
        if exc.exit_code == 0:  # nothing to do (NothingToDo): said, not an error
            from charlstm.cli.ui import console as ui

            ui.warn(ui.make_console(), str(exc))
            return 0
        say(with_help_hint(str(exc), exc.exit_code, command, args))
        return exc.exit_code
    except USAGE_ERROR as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `charlstm` alone: the help
            exc.show()
            return exc.exit_code
        say(f"{usage_message(exc, args)}; see {command_path(command, args)} --help")
        return 2
    return code if isinstance(code, int) else 0


def with_help_hint(message: str, code: int, command: Any, args: list[str]) -> str:
    """A choice the library refused (`--kernels must be one of auto, numpy, numba, not 'numbaa'`)
    ends as click's own choice errors do: `; see charlstm train --help`."""
    if code == 2 and re.match(r"--[\w-]+ must be (one of|auto)", message) and "--help" not in message:
        return f"{message}; see {command_path(command, args)} --help"
    return message


def say(message: str) -> None:
    """One red line on stderr: `error: message`."""
    from charlstm.cli.ui import console as ui

    ui.error(ui.make_console(), message)


def command_path(command: Any, args: list[str]) -> str:
    """`charlstm train`: the command the arguments name, for the hint after a usage error."""
    sub = next((a for a in args if not a.startswith("-")), None)
    return f"charlstm {sub}" if sub in getattr(command, "commands", {}) else "charlstm"


def usage_message(exc: Any, args: list[str]) -> str:
    """A usage error as one plain sentence that names the option: `--lr: 'abc' is not a number`."""
    param = getattr(exc, "param", None)
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    if param is not None and getattr(param, "opts", None):
        return _parameter_message(exc, param, text, args)
    option = getattr(exc, "option_name", None)
    if option and "requires an argument" in text:
        return f"{option} needs a value"
    if option and "no such option" in text.lower():
        import difflib

        close = difflib.get_close_matches(option, getattr(exc, "possibilities", None) or [], cutoff=0.75)
        return f"no such option {option}" + (f" (did you mean {' or '.join(sorted(close))}?)" if close else "")
    text = text.replace(". Did you mean", " (did you mean").replace("?", "?)") if ". Did you mean" in text else text
    return text[:1].lower() + text[1:].rstrip(".")


def _parameter_message(exc: Any, param: Any, text: str, args: list[str]) -> str:
    """A bad or missing value of one option or argument, named: `--epochs: '1.5' is not a whole number`."""
    name = next((o for o in param.opts if o.startswith("--")), param.opts[0])
    if type(exc).__name__ == "MissingParameter":
        return (
            f"missing {name.upper()}"
            if getattr(param, "param_type_name", "") == "argument"
            else f"{name} needs a value"
        )
    value = _given_value(args, param.opts)
    metavar = getattr(param, "metavar", None) or ""
    if metavar.startswith("[") and "|" in metavar:
        return f"{name} must be one of {', '.join(metavar.strip('[]').split('|'))}, not {value!r}"
    lowered = text.lower()
    if "integer" in lowered or "valid int" in lowered:  # click: "integer"; typer 0.28: "valid int"
        return f"{name}: {value!r} is not a whole number"
    if "float" in lowered or "number" in lowered:
        return f"{name}: {value!r} is not a number"
    return f"{name}: {getattr(exc, 'message', text)}"


def _given_value(args: list[str], opts: list[str]) -> str:
    """The value given on the command line for an option (the last time it appears)."""
    value = ""
    for i, arg in enumerate(args):
        if arg in opts and i + 1 < len(args):
            value = args[i + 1]
        elif any(arg.startswith(o + "=") for o in opts if o.startswith("--")):
            value = arg.split("=", 1)[1]
    return value
