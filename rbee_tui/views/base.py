"""Base classes of the views: a title, a DataTable and read-only handling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Label
from textual.widgets.data_table import CellDoesNotExist

if TYPE_CHECKING:
    from rbee_tui.app import RbeeApp


class View(Vertical):
    """A view the app switches to with a digit; `key` names it in preferences."""

    key: ClassVar[str] = ""
    title: ClassVar[str] = ""
    # Actions that change something; --read-only disables them.
    MUTATING: ClassVar[frozenset[str]] = frozenset()

    @property
    def rbee(self) -> RbeeApp:
        from rbee_tui.app import RbeeApp

        assert isinstance(self.app, RbeeApp)
        return self.app

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show mutating actions as disabled in read-only mode."""
        if action in self.MUTATING and self.rbee.read_only:
            return None
        return True

    def focus_main(self) -> None:
        """Move focus to the view's main widget, so its keys show in the footer."""


class TableView(View):
    """A view whose content is one DataTable with a row per resource."""

    COLUMNS: ClassVar[tuple[str, ...]] = ()

    def compose(self) -> ComposeResult:
        yield Label(self.title, classes="view-title")
        table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns(*self.COLUMNS)
        yield table

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one(DataTable)

    def focus_main(self) -> None:
        self.table.focus()

    def fill(self, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Replace the rows, keeping the cursor on the same key when it still exists."""
        tables = self.query(DataTable).results(DataTable)
        table = next(tables, None)
        if table is None:
            # The app is shutting down and has already removed the table.
            return
        selected = self.selected_key()
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)

    def selected_key(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        return None if key.value is None else str(key.value)

    def refresh_rows(self) -> None:
        """Rebuild the rows from the app's state."""
