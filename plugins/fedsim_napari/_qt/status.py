"""The FedSim dock: what this installation has (versions, device, assets, sample data).

Later docks (Explorer, training, federation, export) sit beside it; this one stays as the
place to check an installation from the GUI, mirroring ``fedsim info``.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fedsim_app.info import system_info


class StatusWidget(QWidget):
    """Shows ``fedsim_app.info.system_info()`` as tables, with a Refresh button."""

    def __init__(self, napari_viewer=None, parent=None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.setObjectName("FedSimStatus")
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.versions = _table(["Package", "Version"])
        self.assets = _table(["Asset", "Size (KiB)"])
        self.samples = QLabel()
        self.samples.setWordWrap(True)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        layout = QVBoxLayout(self)
        for w in (self.header, QLabel("<b>Versions</b>"), self.versions,
                  QLabel("<b>Assets</b>"), self.assets, self.samples, refresh):
            layout.addWidget(w)
        self.refresh()

    def refresh(self) -> None:
        info = system_info()
        self.info = info
        self.header.setText(
            f"<b>FedSim {info['versions']['fedsim']}</b><br>"
            f"torch device: <b>{info['torch_device']}</b> ({info['torch_threads']} threads)<br>"
            f"assets: {info['assets_dir']}"
        )
        _fill(self.versions, [(k, v or "not installed") for k, v in info["versions"].items()])
        _fill(self.assets, [(rel, f"{size / 1024:.1f}") for rel, size in info["assets"]])
        cached = ", ".join(info["sample_data"]) or "none yet (generated on first use)"
        self.samples.setText(f"<b>Sample data</b> (cache {info['cache_dir']}): {cached}")


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.NoEditTriggers)
    return table


def _fill(table: QTableWidget, rows: list[tuple[str, str]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(str(text)))
