"""Print the README's set-up commands of one kind, one per line, exactly as written under "## Tests":
`install` (the `python -m pip ...` lines) or `test` (the `python -m pytest ...` lines). .ci/run runs them
verbatim, so CI installs and tests exactly as the README tells a newcomer to."""
import sys
from pathlib import Path

readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
section = readme.split("\n## Tests\n", 1)[1].split("\n## ", 1)[0]
blocks = section.split("```")[1::2]
lines = [ln.strip() for block in blocks for ln in block.splitlines() if ln.strip()]
prefix = {"install": "python -m pip ", "test": "python -m pytest"}[sys.argv[1]]
print("\n".join(ln for ln in lines if ln.startswith(prefix)))
