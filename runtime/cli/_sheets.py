"""Tables that read well both in a terminal and in a pipe.

In a terminal a sheet is a rich table in which ids and names are never cut
or wrapped; only the other columns fold. Written anywhere else (`baton runs
| grep waiting`, a CI log) it is a line of column names and then one line per
row, its cells separated by tabs, nothing cut or wrapped at any width: what
grep, cut and `awk -F'\\t'` expect, and what GitHub's `gh` writes to a pipe.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from rich.text import Text

Cell = str | Text


@dataclass(slots=True)
class Sheet:
    """Rows under named columns; `whole` names the columns of ids and names."""

    title: str
    columns: Sequence[str]
    whole: Collection[str] = ()
    rows: list[tuple[Cell, ...]] = field(default_factory=list)

    def add(self, *cells: Cell) -> None:
        self.rows.append(cells)

    def table(self) -> Table:
        """The sheet as a rich table, for a terminal."""
        table = Table(title=self.title or None, title_justify="left")
        for column in self.columns:
            if column in self.whole:
                table.add_column(column, no_wrap=True)
            else:
                table.add_column(column, overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        return table

    def lines(self) -> list[str]:
        """The column names and the rows, tab-separated, one line each: for a pipe."""
        return ["\t".join(self.columns), *("\t".join(map(_flat, row)) for row in self.rows)]


def _flat(cell: Cell) -> str:
    text = cell.plain if isinstance(cell, Text) else cell
    return text.replace("\t", " ").replace("\n", "; ")


def write_lines(console: Console, lines: Sequence[str]) -> None:
    """Lines as they are, past rich: no markup, no wrapping, and tabs kept as tabs."""
    console.file.write("".join(f"{line}\n" for line in lines))


def show(console: Console, sheet: Sheet, *, titled: bool = False) -> None:
    """A table in a terminal, tab-separated lines elsewhere; `titled` keeps the title there too,
    where the output holds several sheets."""
    if console.is_terminal:
        console.print(sheet.table())
        return
    write_lines(console, [sheet.title, *sheet.lines()] if titled else sheet.lines())
