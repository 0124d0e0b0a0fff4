"""The Agent Skill, the command files, and `parity-skill install/uninstall` for every assistant."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from parity_skill.assistants.install import ASSISTANTS, RECORD
from parity_skill.assistants.skill import command_file, front_matter, skill_files, validate
from parity_skill.report.vocabulary import CHECKS, DIAGNOSIS

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "parity_skill", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_skill_front_matter_follows_the_agent_skills_rules():
    text = skill_files()["SKILL.md"]
    assert validate(text) == []
    meta = front_matter(text)
    assert set(meta) <= {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
    assert meta["name"] == "parity" and "argument-hint" not in meta
    assert validate(text.replace("name: parity", "name: Parity_Skill")) != []  # the validator can fail


def test_skill_tells_how_to_run_read_and_what_not_to_claim():
    text = skill_files()["SKILL.md"]
    for needed in ("--json", "runs the user's code", "`0`", "`1`", "`2`", "no JSON", "root_cause", "file:line",
                   "Never claim parity"):
        assert needed in text, needed


def test_references_are_generated_from_the_package_tables():
    refs = skill_files()
    assert all(f"`{name}`" in refs["references/checks.md"] for name in CHECKS)
    assert all(f"`{kind}`" in refs["references/diagnosis.md"] for kind in DIAGNOSIS)
    assert "1.3e-06" in refs["references/tolerances.md"]


def test_the_repository_copy_of_the_skill_is_current():
    for rel, text in skill_files().items():
        assert (REPO / "skills/parity" / rel).read_text() == text, (
            f"skills/parity/{rel} is stale: python -c \"from parity_skill.assistants.skill import write_folder; "
            "write_folder('skills/parity')\"")


def test_the_repository_copy_of_the_command_files_is_current():
    from parity_skill.assistants.skill import command_files

    for rel, text in command_files().items():
        assert (REPO / "commands" / rel).read_text() == text, (
            f"commands/{rel} is stale: python -c \"from parity_skill.assistants.skill import write_commands; "
            "write_commands('commands')\"")


def test_command_files_carry_each_assistants_argument_syntax():
    assert tomllib.loads(command_file("gemini"))["prompt"].count("{{args}}") >= 1
    assert "$ARGUMENTS" in command_file("claude") and "argument-hint" in command_file("claude")
    assert "$ARGUMENTS" in command_file("opencode") and "argument-hint" not in command_file("opencode")
    assert not command_file("cursor").startswith("---")  # plain Markdown


@pytest.mark.parametrize("assistant", sorted(ASSISTANTS))
@pytest.mark.parametrize("scope", ["project", "user"])
def test_install_then_uninstall_leaves_nothing(tmp_path, assistant, scope):
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    run = cli("install", "--assistant", assistant, "--scope", scope, home=home, cwd=project)
    assert run.returncode == 0, run.stderr
    root = home if scope == "user" else project
    target = ASSISTANTS[assistant].user if scope == "user" else ASSISTANTS[assistant].project
    main = root / target / "SKILL.md" if ASSISTANTS[assistant].style == "skill" else root / target
    assert main.is_file() and str(main) in run.stdout
    assert (root / RECORD).is_file()
    assert tree(home if scope == "project" else project) == []  # the other scope is untouched
    run = cli("uninstall", "--assistant", assistant, "--scope", scope, home=home, cwd=project)
    assert run.returncode == 0, run.stderr
    assert tree(root) == []


def test_a_changed_file_is_never_overwritten_or_removed_without_force(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert cli("install", "--assistant", "codex", home=home, cwd=tmp_path).returncode == 0
    skill = tmp_path / ".agents/skills/parity/SKILL.md"
    skill.write_text(skill.read_text() + "\nmy own note\n")
    again = cli("install", "--assistant", "codex", home=home, cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr and "my own note" in skill.read_text()
    removed = cli("uninstall", "--assistant", "codex", home=home, cwd=tmp_path)
    assert removed.returncode == 2 and skill.is_file()
    assert cli("install", "--assistant", "codex", "--force", home=home, cwd=tmp_path).returncode == 0
    assert "my own note" not in skill.read_text()


def test_a_file_the_user_wrote_is_not_claimed(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    mine = tmp_path / ".gemini/commands/parity.toml"
    mine.parent.mkdir(parents=True)
    mine.write_text('prompt = "mine"\n')
    run = cli("install", "--assistant", "gemini", home=home, cwd=tmp_path)
    assert run.returncode == 2 and mine.read_text() == 'prompt = "mine"\n'
    other = tmp_path / ".claude/skills/parity/notes.md"  # a file of the user's beside an installed skill
    assert cli("install", "--assistant", "claude", home=home, cwd=tmp_path).returncode == 0
    other.write_text("keep me")
    assert cli("uninstall", "--assistant", "claude", home=home, cwd=tmp_path).returncode == 0
    assert other.read_text() == "keep me"


def test_list_shows_every_assistant_in_both_scopes(tmp_path):
    run = cli("install", "--list", home=tmp_path, cwd=tmp_path)
    assert run.returncode == 0
    assert len(run.stdout.strip().splitlines()) == 2 * len(ASSISTANTS)
    assert str(tmp_path / ".github/skills/parity") in run.stdout


def test_every_option_the_skill_names_exists_and_every_workflow_has_a_line():
    import re

    from parity_skill.cli.main import cli

    text = (REPO / "skills/parity/SKILL.md").read_text()
    known = {opt for cmd in cli.commands.values() for p in cmd.params for opt in getattr(p, "opts", [])}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", re.sub(r"python -m pip [^`\n]*", "", text)))
    assert named and named - {"--json"} <= known, named - known
    for workflow in ("parity-skill capture", "parity-skill compare", "A_DIR B_DIR", "--sampling", "--generate",
                     "--emit-test", "--level", "--timeout", "--isolate"):
        assert workflow in text, workflow
    assert "pip install parity-skill" not in text.replace("`pip install parity-skill` finds nothing", "")
    assert "never loosen" in text.lower() and "verbatim" in text and "next_steps" in text
