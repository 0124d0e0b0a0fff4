"""`parity-skill install` / `uninstall`: the skill where each coding assistant reads it."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from parity_skill.assistants.install import ASSISTANTS, InstallError, install, listing, uninstall


def _root(scope: str) -> Path:
    return Path.home() if scope == "user" else Path(os.getcwd())


def _run(fn) -> None:
    try:
        for line in fn():
            click.echo(line)
    except InstallError as exc:
        click.echo(f"parity-skill: error: {exc}", err=True)
        sys.exit(2)
    sys.exit(0)


ASSISTANT = click.option("--assistant", "assistants", multiple=True, type=click.Choice(sorted(ASSISTANTS)),
                         help="Which assistant (repeatable).")
SCOPE = click.option("--scope", type=click.Choice(["project", "user"]), default="project", show_default=True,
                     help="This project (the current folder) or your home folder.")


@click.command("install", help="Write the parity skill (or command file) where a coding assistant reads it.")
@ASSISTANT
@SCOPE
@click.option("--force", is_flag=True, help="Overwrite a file you changed (or one parity-skill did not write).")
@click.option("--list", "show", is_flag=True, help="Show where each assistant's files go, and what is installed.")
def install_command(assistants, scope, force, show) -> None:
    def work():
        if show:
            return listing(Path(os.getcwd()), Path.home())
        if not assistants:
            raise InstallError("name the assistant with --assistant " + "|".join(sorted(ASSISTANTS))
                               + " (or --list)")
        return [f"wrote {path}" for a in assistants for path in install(a, _root(scope), scope, force)]
    _run(work)


@click.command("uninstall", help="Remove exactly the files `parity-skill install` wrote for an assistant.")
@ASSISTANT
@SCOPE
@click.option("--force", is_flag=True, help="Remove files even if you changed them since.")
def uninstall_command(assistants, scope, force) -> None:
    def work():
        if not assistants:
            raise InstallError("name the assistant with --assistant " + "|".join(sorted(ASSISTANTS)))
        removed = [f"removed {path}" for a in assistants for path in uninstall(a, _root(scope), force)]
        return removed or ["nothing to remove: parity-skill installed nothing there for " + ", ".join(assistants)]
    _run(work)
