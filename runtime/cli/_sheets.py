"""Tables in which ids and names are never cut or wrapped; only the other columns fold."""

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


def show(console: Console, sheet: Sheet) -> None:
    console.print(sheet.table())
