"""parity-skill for coding assistants: the Agent Skill, command files, and their installer."""
