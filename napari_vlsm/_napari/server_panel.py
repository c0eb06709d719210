"""The "Server" rows of "Model & adapter": work on a ``napari-vlsm serve`` instead of this computer.

URL, the token (typed, or read from a token file), and the server's project; Connect tries the
server in a worker (one clear line on a wrong URL or token), then swaps the session's engine and
project for the server's (``server_client.attach_engine``): Segment, several structures,
corrections, finetune and adapters then go to the server. Corrections are first kept in a local
outbox (``<project>/server-outbox/<server project>``, ``core/project/layout.py``) and leave it once
the server acknowledged them; "Send waiting" retries after a dropped connection. The dock remembers the URL,
the token FILE and the project, never the token itself.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from napari_vlsm.core.errors import VLSMError

from . import texts, workers
from .workers import guarded, on_click

NO_SERVER_ADAPTER = "none (plain model)"
OUTBOX_CHECK_MS = 2000  # how often the count of corrections waiting on this computer is re-read


def read_token(token: str, token_file: str) -> str:
    """The typed token, else the token file's first line; one clear line when neither works. A token
    file that other users can read gets the client's warning (its rule), as a dock notification."""
    if token.strip():
        return token.strip()
    if not token_file.strip():
        raise VLSMError("give the server's token or its token file (napari-vlsm serve prints where it is)")
    from napari.utils.notifications import show_warning

    from napari_vlsm.client.http import read_token_file  # httpx: only when a server is used

    token, warning = read_token_file(token_file)
    if warning:
        show_warning(texts.toast(f"Others can read the token file\n{warning}"))
    return token


def outbox_root(session, project: str) -> Path:
    return session.local_project.layout.outbox(project)


class ServerBox(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.url = QLineEdit(placeholderText="http://127.0.0.1:8765 (empty: this computer)")
        self.token_file = QLineEdit(placeholderText="token file (or type the token below)")
        self.token = QLineEdit(placeholderText="token (not remembered)")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.project = QLineEdit("default")
        self.btn_connect, self.btn_disconnect = QPushButton("Connect"), QPushButton("Disconnect")
        self.btn_retry = QPushButton("Send waiting corrections")
        self.adapter = QComboBox()
        self.adapter.addItem(NO_SERVER_ADAPTER, None)
        self.status = QLabel("Not connected: the model runs on this computer.")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        for button in (self.btn_connect, self.btn_disconnect, self.btn_retry):
            row.addWidget(button)
        for label, widget in (("Server URL", self.url), ("Token file", self.token_file), ("Token", self.token),
                              ("Server project", self.project)):
            form.addRow(label, widget)
        form.addRow(row)
        form.addRow("Server adapter", self.adapter)
        form.addRow(self.status)
        on_click(self.btn_connect, self.connect, "connecting to the server")
        on_click(self.btn_disconnect, self.disconnect, "disconnecting")
        on_click(self.btn_retry, self.send_waiting, "sending the waiting corrections")
        self.adapter.activated.connect(guarded(self._adapter_chosen, "choosing the server adapter"))
        session.store_changed.connect(guarded(self.show_state, "showing the server state"))
        session.model_changed.connect(guarded(self._adapter_in_use, "showing the server adapter"))
        session.finetune_changed.connect(guarded(self._finetune_changed, "listing the server adapters"))
        # a failed send changes no store signal: the outbox (a local folder) is looked at now and then
        self._outbox_timer = QTimer(self, interval=OUTBOX_CHECK_MS)
        self._outbox_timer.timeout.connect(guarded(self.show_state, "showing the server state"))
        self.show_state()

    # ---------------------------------------------------------------------------- actions
    def connect(self):
        """Try the server in a worker; on success the session works through it. Returns the worker."""
        from .server_client import open_engine

        if self.session.job or self.session.finetuning:
            raise VLSMError("wait for the running job to end before connecting to a server")
        url, project = self.url.text().strip(), self.project.text().strip() or "default"
        if not url:
            raise VLSMError("type the server's URL, e.g. http://127.0.0.1:8765")
        token = read_token(self.token.text(), self.token_file.text())
        self.btn_connect.setEnabled(False)
        self.status.setText(f"Connecting to {url}…")
        return workers.start(open_engine, url, token, project, what="connecting to the server",
                             on_return=self._connected, on_finish=self.show_state)

    def _connected(self, engine) -> None:
        from .server_client import attach_engine

        attach_engine(self.session, engine, outbox_root(self.session, engine.project))
        self.refresh_adapters()

    def disconnect(self) -> None:
        from .server_client import detach_engine

        if self.session.remote is not None:
            detach_engine(self.session)
        self.show_state()

    def send_waiting(self):
        if self.session.remote is None:
            return None
        return workers.start(self.session.project.flush, what="sending the waiting corrections",
                             on_finish=self.show_state)

    def refresh_adapters(self, select: str | None = None):
        """Ask the server for the project's adapters in a worker (no network on the GUI thread); the
        combo is filled when they arrive (``select``: make that one current). Returns the worker."""
        engine = self.session.remote
        if engine is None:
            self._fill([], None)
            return None
        return workers.start(engine.server_adapters, what="listing the server adapters",
                             on_return=guarded(lambda rows: self._fill(rows, select), "listing the server adapters"))

    def _fill(self, rows: list[dict], select: str | None) -> None:
        engine = self.session.remote
        self.adapter.clear()
        self.adapter.addItem(NO_SERVER_ADAPTER, None)
        for row in rows if engine is not None else []:
            self.adapter.addItem(row["name"], row["name"])
        current = select or (engine.adapter if engine is not None else None)
        index = self.adapter.findData(current) if current else 0
        self.adapter.setCurrentIndex(max(index, 0))

    def _finetune_changed(self, running: bool) -> None:
        if not running and self.session.remote is not None:  # a finetune may have made a new adapter
            self.refresh_adapters()

    def _adapter_in_use(self) -> None:
        engine = self.session.remote
        if engine is None or engine.adapter == self.adapter.currentData():
            return
        if self.adapter.findData(engine.adapter) < 0:  # e.g. the one a finetune just made
            self.refresh_adapters(select=engine.adapter)
            return
        self.adapter.setCurrentIndex(max(self.adapter.findData(engine.adapter), 0))

    def _adapter_chosen(self, index: int) -> None:
        engine = self.session.remote
        if engine is None:
            return
        name = self.adapter.itemData(index)
        engine.load_adapter(name) if name else engine.clear_adapter()
        self.session.model_changed.emit()

    # ------------------------------------------------------------------------------ state
    def show_state(self) -> None:
        engine = self.session.remote
        on = engine is not None
        if on != self._outbox_timer.isActive():
            self._outbox_timer.start() if on else self._outbox_timer.stop()
        self.btn_connect.setEnabled(not on)
        self.btn_disconnect.setEnabled(on)
        self.adapter.setEnabled(on)
        for field in (self.url, self.token_file, self.token, self.project):
            field.setEnabled(not on)
        pending = self.session.project.pending()  # the outbox's meta.json files: no image decoded
        self.btn_retry.setVisible(bool(pending))
        if not on:
            self.status.setText("Not connected: the model runs on this computer.")
        else:
            wait = f"; {pending} correction(s) wait on this computer to be sent" if pending else ""
            self.status.setText(f"Connected to {engine.client.url}, project {engine.project}{wait}.")

    def remembered(self) -> dict:
        """What the dock's settings keep: never the token."""
        return {"server_url": self.url.text().strip(), "token_file": self.token_file.text().strip(),
                "server_project": self.project.text().strip()}

    def restore(self, values: dict) -> None:
        for key, field in (("server_url", self.url), ("token_file", self.token_file),
                           ("server_project", self.project)):
            if values.get(key):
                field.setText(values[key])
