"""The Agent Skill and the command files, rendered from templates/skill and the package's own tables."""
from __future__ import annotations

import jinja2

from parity_skill.plan.tolerances import BASE, LEVELS
from parity_skill.render.script import template_dir
from parity_skill.report.vocabulary import CHECKS, DIAGNOSIS, EXIT_CODES

SKILL_NAME = "parity"
REFERENCES = ("tolerances", "checks", "diagnosis")

# how each format receives the user's request
ARGUMENTS = {
    "skill": ("The user's request names the two implementations: files, `file.py::Name`, or an importable reference.",
              "<a.py[::Name]> vs <b.py[::Name]>"),
    "claude": ("Arguments: `$ARGUMENTS`.", "$ARGUMENTS"),
    "opencode": ("Arguments: `$ARGUMENTS`.", "$ARGUMENTS"),
    "gemini": ("Arguments: `{{args}}`.", "{{args}}"),
    "cursor": ("The text after the command names the two implementations.", "<a.py[::Name]> vs <b.py[::Name]>"),
}


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir() / "skill")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def _context(style: str) -> dict:
    arguments, args = ARGUMENTS[style]
    return {"arguments": arguments, "args": args, "exit_codes": EXIT_CODES, "checks": CHECKS,
            "diagnosis": DIAGNOSIS, "base": BASE, "levels": LEVELS}


def references() -> dict[str, str]:
    env = _env()
    return {f"references/{name}.md": env.get_template(f"{name}.md.j2").render(**_context("skill"))
            for name in REFERENCES}


def skill_files() -> dict[str, str]:
    """The portable Agent Skill folder: relative path -> text."""
    return {"SKILL.md": _env().get_template("SKILL.md.j2").render(**_context("skill")), **references()}


def command_file(style: str) -> str:
    """One self-contained command file (the references appended) for assistants that read commands, not skills."""
    inline = "\n".join(text.replace("# ", "## ", 1) for text in references().values())
    ctx = {**_context(style), "references": inline, "front_matter": style in ("claude", "opencode"),
           "claude": style == "claude"}
    template = "gemini.toml.j2" if style == "gemini" else "command.md.j2"
    return _env().get_template(template).render(**ctx)


def front_matter(text: str) -> dict[str, str]:
    """The `key: value` lines between the leading `---` fences (the subset of YAML a SKILL.md uses)."""
    if not text.startswith("---\n"):
        return {}
    head = text[4:text.index("\n---", 4)]
    return dict(line.split(": ", 1) for line in head.splitlines() if ": " in line)


def validate(text: str, folder_name: str = SKILL_NAME) -> list[str]:
    """Problems with a SKILL.md under the Agent Skills rules (empty when it is valid)."""
    import re

    meta = front_matter(text)
    problems = []
    allowed = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
    problems += [f"front matter field '{k}' is not allowed" for k in meta if k not in allowed]
    name = meta.get("name", "")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) or len(name) > 64:
        problems.append(f"name '{name}' must be 1-64 lowercase letters, digits and single hyphens")
    if name != folder_name:
        problems.append(f"name '{name}' must match its folder '{folder_name}'")
    if not 1 <= len(meta.get("description", "")) <= 1024:
        problems.append("description must be 1-1024 characters")
    if len(meta.get("compatibility", "")) > 500:
        problems.append("compatibility must be at most 500 characters")
    if text.count("\n") >= 500:
        problems.append("body must stay under 500 lines")
    return problems


COMMAND_FILES = {"claude": "claude/parity.md", "gemini": "gemini/parity.toml", "cursor": "cursor/parity.md",
                 "opencode": "opencode/parity.md"}


def command_files() -> dict[str, str]:
    """The slash-command files the installer writes, one per command style: relative path -> text."""
    return {rel: command_file(style) for style, rel in COMMAND_FILES.items()}


def write_commands(folder: str) -> None:
    """Write the command files into `folder` (the repository keeps a copy at commands/)."""
    from pathlib import Path

    for rel, text in command_files().items():
        path = Path(folder) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def write_folder(folder: str) -> None:
    """Write the Agent Skill into `folder` (the repository keeps a copy at skills/parity)."""
    from pathlib import Path

    for rel, text in skill_files().items():
        path = Path(folder) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
