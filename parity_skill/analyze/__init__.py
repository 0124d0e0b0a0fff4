"""Stage 1: read source files with libcst into FileAnalysis values."""
from parity_skill.analyze.model import FileAnalysis, Symbol
from parity_skill.analyze.imported import module_class
from parity_skill.analyze.reader import analyze_file

__all__ = ["FileAnalysis", "Symbol", "analyze_file", "module_class"]
