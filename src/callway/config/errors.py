"""Errors and warnings raised while reading configuration files.

Every problem names the file and line it was found at, in the
``file:line[:column]: problem`` form compilers and Asterisk's own log use, so an
operator can jump straight to it.
"""

from __future__ import annotations

from callway.pbx.model import ConfigWarning

__all__ = ["ConfigError", "ConfigWarning"]


class ConfigError(Exception):
    """A configuration file could not be understood; nothing from it was applied."""

    def __init__(self, filename: str, line: int, problem: str, column: int | None = None) -> None:
        self.filename = filename
        self.line = line
        self.column = column
        self.problem = problem
        super().__init__(filename, line, problem, column)

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}"
        if self.column is not None:
            where += f":{self.column}"
        return f"{where}: {self.problem}"
