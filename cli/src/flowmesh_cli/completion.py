"""``flowmesh completion bash|zsh``: a completion script made from the parser itself, so
it knows every command, action and option there is."""

from __future__ import annotations

import argparse


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(s for a in parser._actions for s in a.option_strings if s.startswith("--"))


def _choices(parser: argparse.ArgumentParser) -> list[str]:
    """The values a positional argument with fixed choices takes (``bash``, ``zsh``)."""
    return [
        str(choice)
        for a in parser._actions
        if not a.option_strings
        and a.choices is not None
        and not isinstance(a, argparse._SubParsersAction)
        for choice in a.choices
    ]


def words(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """What may follow each command path: ``""`` -> commands, ``"workflows"`` -> actions and
    options, ``"workflows apply"`` -> options."""
    table: dict[str, list[str]] = {}

    def walk(path: str, at: argparse.ArgumentParser) -> None:
        children = _subparsers(at)
        table[path] = sorted(children) + _choices(at) + _options(at)
        for name, child in children.items():
            walk(f"{path} {name}".strip(), child)

    walk("", parser)
    return table


def valued(parser: argparse.ArgumentParser) -> list[str]:
    """Every option, of any command, that takes a value (its next word is not a command)."""
    found: set[str] = set()

    def walk(at: argparse.ArgumentParser) -> None:
        for action in at._actions:
            if action.option_strings and action.nargs != 0:
                found.update(action.option_strings)
        for child in _subparsers(at).values():
            walk(child)

    walk(parser)
    return sorted(found)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    cases = "\n".join(
        f'        "{path}") words="{" ".join(choices)}" ;;'
        for path, choices in words(parser).items()
    )
    takes = "|".join(valued(parser))
    body = f"""_flowmesh_complete() {{
    local at="" word skip=""
    for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        if [ -n "$skip" ]; then skip=""; continue; fi
        case "$word" in
            {takes}) skip=1 ;;
            -*) ;;
            *) at="${{at:+$at }}$word" ;;
        esac
    done
    local words=""
    case "${{COMP_WORDS[COMP_CWORD-1]}}" in
        -o|--output) words="table json yaml" ;;
    esac
    # the command the words so far name: after its arguments (a workflow's name ...), the
    # longest command path they start with
    while [ -z "$words" ]; do
        case "$at" in
{cases}
        esac
        [ -n "$words" ] || [ -z "$at" ] && break
        case "$at" in *" "*) at="${{at% *}}" ;; *) at="" ;; esac
    done
    COMPREPLY=( $(compgen -W "$words" -- "${{COMP_WORDS[COMP_CWORD]}}") )
}}
"""
    hook = "complete -o default -F _flowmesh_complete flowmesh\n"
    if shell == "bash":
        head = "# flowmesh completion for bash: source it, or put it in bash_completion.d\n"
        return f"{head}{body}{hook}"
    return (
        "#compdef flowmesh\n# flowmesh completion for zsh: source it (bash completion, emulated)\n"
        "autoload -U +X bashcompinit && bashcompinit\n"
        f"{body}{hook}"
    )
