"""Write the skill (or command file) where each assistant reads it, record what was written, remove exactly that.

A record `.parity-skill-install.json` in the scope's root (the project, or the home folder) keeps each written
file's path and SHA-256; a file whose content changed since is never overwritten or removed without `--force`."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from parity_skill.assistants.skill import SKILL_NAME, command_file, skill_files

RECORD = ".parity-skill-install.json"


@dataclass(frozen=True)
class Target:
    """Where one assistant reads parity-skill: a skill folder, or one command file in a given style."""

    project: str
    user: str
    style: str  # skill | claude | gemini | cursor | opencode (a command file)


ASSISTANTS: dict[str, Target] = {
    "claude": Target(f".claude/skills/{SKILL_NAME}", f".claude/skills/{SKILL_NAME}", "skill"),
    "codex": Target(f".agents/skills/{SKILL_NAME}", f".agents/skills/{SKILL_NAME}", "skill"),
    "copilot": Target(f".github/skills/{SKILL_NAME}", f".copilot/skills/{SKILL_NAME}", "skill"),
    "gemini": Target(f".gemini/commands/{SKILL_NAME}.toml", f".gemini/commands/{SKILL_NAME}.toml", "gemini"),
    "cursor": Target(f".cursor/commands/{SKILL_NAME}.md", f".cursor/commands/{SKILL_NAME}.md", "cursor"),
    "opencode": Target(f".opencode/commands/{SKILL_NAME}.md", f".config/opencode/commands/{SKILL_NAME}.md",
                       "opencode"),
}


class InstallError(Exception):
    """A refused install or uninstall (exit 2), one line."""


def planned(assistant: str, scope: str) -> dict[str, str]:
    """Relative path (to the scope root) -> content, for one assistant."""
    t = ASSISTANTS[assistant]
    where = t.project if scope == "project" else t.user
    if t.style == "skill":
        return {f"{where}/{rel}": text for rel, text in skill_files().items()}
    return {where: command_file(t.style)}


def _sha(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def _load(root: Path) -> dict:
    path = root / RECORD
    if not path.is_file():
        return {"files": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InstallError(f"{path}: unreadable install record ({exc}); remove it to start over") from None


def _save(root: Path, record: dict) -> None:
    path = root / RECORD
    if record["files"]:
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    elif path.exists():
        path.unlink()


def install(assistant: str, root: Path, scope: str, force: bool = False) -> list[str]:
    """Write the files; returns their paths. A file that exists and is not ours as we wrote it is refused."""
    record = _load(root)
    files = planned(assistant, scope)
    for rel, text in files.items():
        path = root / rel
        if not path.exists() or force:
            continue
        ours = record["files"].get(rel)
        if ours is None or ours["sha256"] != _sha(path.read_bytes()):
            if path.read_text(encoding="utf-8", errors="replace") != text:
                raise InstallError(f"{path}: exists and was changed or not written by parity-skill; "
                                   "rerun with --force to overwrite it")
    written = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        record["files"][rel] = {"assistant": assistant, "sha256": _sha(text.encode("utf-8"))}
        written.append(str(path))
    _save(root, record)
    return written


def uninstall(assistant: str, root: Path, force: bool = False) -> list[str]:
    """Remove exactly the files the record says were written for `assistant`, then the folders left empty."""
    record = _load(root)
    mine = {rel: r for rel, r in record["files"].items() if r["assistant"] == assistant}
    changed = [rel for rel, r in mine.items() if (root / rel).is_file() and _sha((root / rel).read_bytes()) != r["sha256"]]
    if changed and not force:
        raise InstallError(f"{root / changed[0]}: changed since parity-skill wrote it; rerun with --force to "
                           "remove it anyway")
    removed = []
    for rel in mine:
        path = root / rel
        if path.is_file():
            path.unlink()
            removed.append(str(path))
        del record["files"][rel]
        parent = path.parent
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    _save(root, record)
    return removed


def listing(project: Path, home: Path) -> list[str]:
    """One line per assistant: where it goes in each scope, and whether it is installed there."""
    lines = []
    for name, t in ASSISTANTS.items():
        for scope, root, where in (("project", project, t.project), ("user", home, t.user)):
            installed = any(r["assistant"] == name for r in _load(root)["files"].values()) \
                if (root / RECORD).is_file() else False
            kind = "Agent Skill" if t.style == "skill" else f"{t.style} command"
            lines.append(f"{name:<9} {scope:<8} {root / where}  ({kind}{', installed' if installed else ''})")
    return lines
