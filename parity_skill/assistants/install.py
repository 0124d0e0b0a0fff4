"""Write the skill (or command file) where each assistant reads it, record what was written, remove exactly that.

A record `.parity-skill-install.json` in the scope's root (the project, or the home folder) keeps each written
file's path and SHA-256; a file whose content changed since is never overwritten or removed without `--force`."""
from __future__ import annotations

import hashlib
import json
import os
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
    """The install record, checked: {"files": {relative path: {"assistant", "sha256"}}, "dirs": {...}}. A record of
    another shape (hand-edited, truncated) is refused before anything is touched."""
    path = root / RECORD
    if not os.path.lexists(path):
        return {"files": {}, "dirs": {}}
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            raise ValueError("not a regular file of at most 1 MiB")
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise InstallError(f"{path}: unreadable install record ({exc}); remove it to start over") from None
    entry_ok = lambda e: isinstance(e, dict) and e.get("assistant") in ASSISTANTS and isinstance(e.get("sha256"), str)  # noqa: E731
    if not (isinstance(record, dict) and isinstance(record.get("files"), dict)
            and all(isinstance(k, str) and entry_ok(e) for k, e in record["files"].items())
            and isinstance(record.get("dirs", {}), dict)
            and all(isinstance(k, str) and v in ASSISTANTS for k, v in record.get("dirs", {}).items())):
        raise InstallError(f"{path}: not an install record parity-skill wrote (expected {{\"files\": {{path: "
                           "{\"assistant\", \"sha256\"}}}}); nothing was removed: fix or remove it by hand")
    record.setdefault("dirs", {})
    return record


def _save(root: Path, record: dict) -> None:
    path = root / RECORD
    if record["files"]:
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    elif path.exists():
        path.unlink()


def _inside(root: Path, rel: str, assistant: str) -> Path:
    """root/rel, refused unless rel is one of the assistant's own paths and its real path stays in the scope."""
    t = ASSISTANTS[assistant]
    own = rel in (t.project, t.user) or rel.startswith((t.project + "/", t.user + "/"))
    if os.path.isabs(rel) or ".." in Path(rel).parts or not own:
        raise InstallError(f"{root / RECORD}: entry {rel!r} is not a path parity-skill writes for {assistant}; "
                           "nothing was removed: fix or remove the record by hand")
    real, top = os.path.realpath(root / rel), os.path.realpath(root)
    if os.path.commonpath([real, top]) != top:
        raise InstallError(f"{root / rel}: resolves outside {root} (to {real}, through a symbolic link); nothing "
                           "was removed: remove those files by hand")
    return root / rel


def _escapes(root: Path, rel: str) -> str | None:
    """Where writing root/rel would land outside the scope through a symbolic link, or None."""
    real, top = os.path.realpath(root / rel), os.path.realpath(root)
    return real if os.path.commonpath([real, top]) != top else None


def install(assistant: str, root: Path, scope: str, force: bool = False) -> list[str]:
    """Write the files; returns their paths. A file that exists and is not ours as we wrote it is refused, and so
    is a path that a symbolic link takes outside the scope (both unless `force`)."""
    record = _load(root)
    files = planned(assistant, scope)
    for rel, text in files.items():
        path = root / rel
        outside = _escapes(root, rel)
        if outside and not force:
            raise InstallError(f"{path}: a symbolic link takes it outside {root} (to {outside}); rerun with --force "
                               "to write there")
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
        for folder in reversed(Path(rel).parents[:-1]):  # the folders this install creates are ours to remove
            if not (root / folder).exists():
                record["dirs"][str(folder)] = assistant
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        record["files"][rel] = {"assistant": assistant, "sha256": _sha(text.encode("utf-8"))}
        written.append(str(path))
    _save(root, record)
    return written


def uninstall(assistant: str, root: Path, force: bool = False) -> list[str]:
    """Remove exactly the files the record says were written for `assistant`, then the folders an install created
    that are left empty. Every entry is checked before anything is removed."""
    record = _load(root)
    mine = {rel: _inside(root, rel, assistant) for rel, r in record["files"].items() if r["assistant"] == assistant}
    changed = [rel for rel, path in mine.items() if path.is_file() and _sha(path.read_bytes()) !=
               record["files"][rel]["sha256"]]
    if changed and not force:
        raise InstallError(f"{root / changed[0]}: changed since parity-skill wrote it; rerun with --force to "
                           "remove it anyway")
    removed = []
    try:
        for rel, path in mine.items():
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(str(path))
            del record["files"][rel]
        ours = sorted((d for d, a in record["dirs"].items() if a == assistant), key=lambda d: -len(Path(d).parts))
        for rel in ours:
            folder = root / rel
            if folder.is_dir() and not folder.is_symlink() and not _escapes(root, rel) and not any(folder.iterdir()):
                folder.rmdir()
            if not folder.exists() or folder.is_symlink():
                del record["dirs"][rel]
    finally:
        _save(root, record)
    return removed


def listing(project: Path, home: Path) -> list[str]:
    """One line per assistant: where it goes in each scope, and whether it is installed there."""
    lines = []
    for name, t in ASSISTANTS.items():
        for scope, root, where in (("project", project, t.project), ("user", home, t.user)):
            installed = _installed(root, name)
            kind = "Agent Skill" if t.style == "skill" else f"{t.style} command"
            lines.append(f"{name:<9} {scope:<8} {root / where}  ({kind}{', installed' if installed else ''})")
    return lines


def _installed(root: Path, assistant: str) -> bool:
    try:
        return any(r["assistant"] == assistant for r in _load(root)["files"].values())
    except InstallError:
        return False
