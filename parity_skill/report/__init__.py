"""Stage 5: the report, as the schema's JSON object or as text."""
from parity_skill.report.build import error_report, overall, report
from parity_skill.report.text import render_text

__all__ = ["error_report", "overall", "render_text", "report"]
