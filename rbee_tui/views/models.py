"""The models view: each hive's catalog, downloads with progress, delete, load and unload."""

from __future__ import annotations

from typing import Any, ClassVar, TypeGuard

from textual.binding import Binding

from rbee_tui.live import format as fmt
from rbee_tui.views.base import TableView


def progress_cell(fields: dict[str, Any]) -> str:
    """Format a bar with percent, rate and ETA from the hive's `progress` event fields.

    The hive sends `bytes_done`, `bytes_total` (None when the source gives no size),
    `percent`, `rate_bytes_per_second` and `eta_seconds`.
    """
    done, total = fields.get("bytes_done"), fields.get("bytes_total")
    if not _is_number(done):
        return "-"
    rate = fields.get("rate_bytes_per_second")
    rate_text = f" {fmt.size(rate)}/s" if _is_number(rate) else ""
    if not _is_number(total) or total <= 0:
        return f"{fmt.size(done)}{rate_text}"
    percent = fields.get("percent")
    share = min(percent / 100 if _is_number(percent) else done / total, 1.0)
    text = f"{fmt.bar(share, 8)} {100 * share:5.1f}%{rate_text}"
    eta = fields.get("eta_seconds")
    if _is_number(eta) and share < 1.0:
        text += f" ETA {fmt.duration(eta)}"
    return text


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ModelsView(TableView):
    """Models per hive with size, architecture, quantisation, state and download progress."""

    key = "models"
    title = "Models"
    COLUMNS = ("HIVE", "MODEL", "SIZE", "ARCH", "QUANT", "STATE", "PROGRESS")
    MUTATING = frozenset({"download_model", "delete_model", "load_model", "unload_model"})
    BINDINGS: ClassVar = [
        Binding("d", "download_model", "Download", id="models.download"),
        Binding("delete,X", "delete_model", "Delete", id="models.delete"),
        Binding("l", "load_model", "Load", id="models.load"),
        Binding("u", "unload_model", "Unload", id="models.unload"),
        Binding("r", "list_models", "Refresh", id="models.refresh"),
    ]

    def refresh_rows(self) -> None:
        app = self.rbee
        rows = []
        for (hive_id, model_id), model in sorted(app.cluster.models.items()):
            progress = app.downloads.get(model_id)
            rows.append((f"{hive_id}/{model_id}", self._cells(hive_id, model, progress)))
        listed = {model_id for _, model_id in app.cluster.models}
        for model_id, fields in sorted(app.downloads.items()):
            if model_id not in listed:
                hive_id = str(fields.get("hive_id") or "-")
                model = {"id": model_id, "state": "downloading"}
                rows.append((f"download/{model_id}", self._cells(hive_id, model, fields)))
        self.fill(rows)

    def _cells(self, hive_id: str, model: dict[str, Any],
               progress: dict[str, Any] | None) -> tuple[Any, ...]:
        # The hive reads architecture and quantisation from the GGUF header once the file is
        # complete, so both stay `-` while a model downloads.
        return (self.rbee.hive_aliases.get(hive_id, hive_id), model.get("id", "-"),
                fmt.size(model.get("size")), model.get("architecture") or "-",
                model.get("quantization") or "-", model.get("state", "-"),
                progress_cell(progress) if progress else "-")

    def _selected(self) -> tuple[str, str] | None:
        key = self.selected_key()
        if key is None or key.startswith("download/"):
            return None
        hive_id, _, model_id = key.partition("/")
        return hive_id, model_id

    def action_download_model(self) -> None:
        def download(ref: str | None) -> None:
            if ref:
                self.rbee.download_model(ref)

        self.rbee.ask("Download which model? (hf:<org>/<repo>:<file.gguf> or file:<path>)",
                      download, placeholder="hf:org/repo:model.Q4_K_M.gguf")

    def action_delete_model(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        hive_id, model_id = selected
        self.rbee.confirm(
            f"Delete model {model_id!r} from hive {hive_id} and its files?",
            lambda: self.rbee.run_operation(
                {"operation": "model_delete", "hive_id": hive_id, "id": model_id}),
            "Delete")

    def action_load_model(self) -> None:
        if (selected := self._selected()) is not None:
            self.rbee.run_operation({"operation": "model_load", "hive_id": selected[0],
                                     "id": selected[1]})

    def action_unload_model(self) -> None:
        if (selected := self._selected()) is not None:
            self.rbee.run_operation({"operation": "model_unload", "hive_id": selected[0],
                                     "id": selected[1]})

    def action_list_models(self) -> None:
        for hive_id in self.rbee.cluster.hives:
            self.rbee.run_operation({"operation": "model_list", "hive_id": hive_id})
