"""Step 2 · Hardware: what this machine has (probed in a thread) and the user's constraints."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Input, Label, LoadingIndicator, Select, Static, Switch

from modelwiz.engine.config import ConstraintsConfig
from modelwiz.engine.errors import UserError
from modelwiz.engine.hardware import HardwareReport
from modelwiz.engine.plan import memory_budget
from modelwiz.engine.sources.base import Candidate
from modelwiz.tui.base import EngineReply, StepScreen
from modelwiz.tui.format import fmt_limit, fmt_seconds
from modelwiz.tui.messages import ConstraintsChanged, HardwareRead
from modelwiz.tui.state import ModelCount, Services, WizardState, count_models


def _positive(text: str, what: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: '{text}' is not a number; leave it empty for no limit") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what}: must be a number above 0; leave it empty for no limit")
    return value


DURATION_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def parse_duration(text: str) -> float | None:
    """A time budget: '2h', '90m', '1.5 h', '45 min', '3600s'; a bare number is hours; '' is none.
    Raises ValueError with a one-line message."""
    text = text.strip().lower()
    if not text:
        return None
    number_part = text.rstrip("abcdefghijklmnopqrstuvwxyz ").strip()
    unit = text[len(number_part) :].strip() or "h"
    try:
        value = float(number_part)
    except ValueError:
        value = math.nan
    if unit not in DURATION_UNITS or not math.isfinite(value) or value <= 0:
        raise ValueError(f"time budget: '{text}' is not a duration such as 2h or 90m; leave it empty for no limit")
    return value * DURATION_UNITS[unit]


def parse_constraints(device: str, max_memory: str, max_params: str, licenses: str, offline: bool) -> ConstraintsConfig:
    """The constraints form as a ConstraintsConfig. Raises ValueError with a one-line message."""
    licenses_list = [part.strip().lower() for part in licenses.replace(";", ",").split(",") if part.strip()]
    for lic in licenses_list:
        if " " in lic:
            raise ValueError(f"licenses: '{lic}' contains a space; separate licenses with commas")
    return ConstraintsConfig(
        device=device or "auto",
        max_memory_gb=_positive(max_memory, "max memory (GB)"),
        max_params_m=_positive(max_params, "max parameters (M)"),
        licenses=licenses_list,
        offline=offline,
    )


def hardware_table(hw: HardwareReport) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("CPU", Text(hw.cpu_model))
    table.add_row("Cores", f"{hw.cpu_cores_physical} physical · {hw.cpu_cores_logical} logical")
    table.add_row("RAM", f"{hw.ram_total_gb:.1f} GB · {hw.ram_available_gb:.1f} GB available")
    if hw.gpus:
        for g in hw.gpus:
            table.add_row(f"GPU {g.index}", Text(g.name))
            bf16 = "bf16 ✓" if g.bf16 else "bf16 ✗"
            table.add_row("", f"{g.total_gb:.1f} GB, {g.free_gb:.1f} free · {bf16}")
    else:
        table.add_row("GPU", Text("none detected", style="dim"))
    table.add_row("MPS", "yes" if hw.mps else "no")
    table.add_row("Disk", Text(f"{hw.disk_free_gb:.1f} GB free · {hw.disk_path}"))
    if hw.torch_version:
        table.add_row("torch", hw.torch_version + (f" · CUDA {hw.cuda_version}" if hw.cuda_version else ""))
    if hw.probe_error:
        table.add_row("probe", Text(hw.probe_error, style="bold red"))
    return table


class HardwareScreen(StepScreen):
    STEP = "hardware"
    HELP_NOTES: ClassVar[tuple[str, ...]] = (
        "The accelerator probe imports torch in a separate process; it takes a few seconds.",
        "Max memory: the training peak must fit (empty: what the device has free).",
        "Max params: in millions (e.g. 150). Licenses: comma-separated, e.g. apache-2.0, mit.",
        "Offline: only models already on disk.",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "detect", "Re-detect"),
    ]
    error: str = ""

    class ProbeReply(EngineReply):
        """`value`: the HardwareReport."""

    class CandidatesRead(EngineReply):
        """`value`: every candidate of the modality in `tag`."""

    class Counted(EngineReply):
        """`value`: a ModelCount; `tag`: the (constraints, time budget) it was counted for."""

    def __init__(self, state: WizardState, services: Services) -> None:
        super().__init__(state, services)
        self.hardware: HardwareReport | None = state.hardware  # the report shown here
        self.candidates: dict[str, list[Candidate]] = {}  # by modality, read once
        self.count: ModelCount | None = None  # the latest count for the form's values
        self.time_budget_s: float | None = state.time_budget_s

    def compose_body(self) -> Iterable[Widget]:
        con = self.state.config.constraints
        with Horizontal(id="hw-panels"):
            with Vertical(id="hw-box") as box:
                box.border_title = "Detected"
                yield LoadingIndicator(id="hw-loading")
                yield Static("", id="hw-info")
            with Vertical(id="constraints-box") as box:
                box.border_title = "Constraints"
                with Horizontal(classes="form-row"):
                    yield Label("Device", classes="field-label")
                    yield Select(
                        self._device_options(None),
                        value=con.device or "auto",
                        allow_blank=False,
                        compact=True,
                        id="device",
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Max memory GB", classes="field-label")
                    yield Input(
                        fmt_limit(con.max_memory_gb), id="max-memory", compact=True, placeholder="all available"
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Max params M", classes="field-label")
                    yield Input(fmt_limit(con.max_params_m), id="max-params", compact=True, placeholder="no limit")
                with Horizontal(classes="form-row"):
                    yield Label("Licenses", classes="field-label")
                    yield Input(
                        ", ".join(con.licenses), id="licenses", compact=True, placeholder="any (e.g. apache-2.0, mit)"
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Offline only", classes="field-label")
                    yield Switch(con.offline, id="offline")
                    yield Static(self._offline_text(con.offline), id="offline-text")
                with Horizontal(classes="form-row"):
                    yield Label("Time budget", classes="field-label")
                    budget = self.state.time_budget_s
                    yield Input(
                        fmt_seconds(budget) if budget else "",
                        id="time-budget",
                        compact=True,
                        placeholder="none (e.g. 2h, 90m)",
                    )
                yield Static("", id="hw-status", classes="status-line")
                yield Static("", id="hw-budget")
                yield Static("", id="hw-count", classes="status-line -info")

    def on_mount(self) -> None:
        self.query_one("#device", Select).focus()
        if self.hardware is None:
            self.action_detect()
        else:
            self._show_hardware(self.hardware)

    # ------------------------------------------------------------------ hardware

    def _device_options(self, hw: HardwareReport | None) -> list[tuple[str, str]]:
        options = [("auto", "auto"), ("cpu", "cpu")]
        if hw is not None:
            for g in hw.gpus:
                options.append((f"cuda:{g.index} {g.name}", f"cuda:{g.index}"))
            if hw.mps:
                options.append(("mps", "mps"))
        current = self.state.config.constraints.device
        if current not in [value for _, value in options]:
            options.append((current, current))
        return options

    def action_detect(self) -> None:
        self.query_one("#hw-loading").display = True
        self.query_one("#hw-info").display = False
        self.call_engine(
            self.ProbeReply, self.services.read_hardware, copy.deepcopy(self.state.config), group="hardware"
        )

    @on(ProbeReply)
    def _hardware_read(self, reply: ProbeReply) -> None:
        self.query_one("#hw-loading").display = False
        info = self.query_one("#hw-info", Static)
        info.display = True
        if reply.value is None:
            info.update(Content.styled(f"✗ {reply.error}\nF5 tries again.", "$error"))
            return
        self.hardware = reply.value
        self.post_message(HardwareRead(reply.value))
        self._show_hardware(reply.value)

    def _show_hardware(self, hw: HardwareReport) -> None:
        self.query_one("#hw-loading").display = False
        info = self.query_one("#hw-info", Static)
        info.display = True
        info.update(hardware_table(hw))
        select = self.query_one("#device", Select)
        value = self.state.config.constraints.device or "auto"
        with select.prevent(Select.Changed):
            select.set_options(self._device_options(hw))
            select.value = value
        self._validate()

    # ------------------------------------------------------------------ constraints

    def _read_form(self) -> ConstraintsConfig:
        device = self.query_one("#device", Select).value
        constraints = parse_constraints(
            str(device) if isinstance(device, str) else "auto",
            self.query_one("#max-memory", Input).value,
            self.query_one("#max-params", Input).value,
            self.query_one("#licenses", Input).value,
            self.query_one("#offline", Switch).value,
        )
        self.time_budget_s = parse_duration(self.query_one("#time-budget", Input).value)
        return constraints

    def _validate(self) -> bool:
        status = self.query_one("#hw-status", Static)
        try:
            constraints = self._read_form()
            budget = self._budget_text(constraints)  # refuses a device this machine lacks
        except (ValueError, UserError) as exc:
            self.error = str(exc)
            status.update(Content("✗ " + self.error))
            status.set_classes("status-line -error")
            self.query_one("#hw-count", Static).update("")
            self.count = None
            return False
        self.error = ""
        self.post_message(ConstraintsChanged(constraints, self.time_budget_s))
        self.query_one("#offline-text", Static).update(self._offline_text(constraints.offline))
        status.update("")
        status.set_classes("status-line")
        self.query_one("#hw-budget", Static).update(budget)
        self._count(constraints)
        return True

    # ------------------------------------------------------------------ how many models are left

    def _count(self, constraints: ConstraintsConfig) -> None:
        """Count the models these constraints leave, in a worker (the newest values win)."""
        if self.hardware is None or self.state.data is None:
            return
        modality = self.state.config.task.modality
        if modality not in self.candidates:
            self.query_one("#hw-count", Static).update(Content.styled("Counting the models …", "$text-muted"))
            self.call_engine(self.CandidatesRead, self.services.candidates, modality, group="candidates", tag=modality)
            return
        config = copy.deepcopy(self.state.config)
        config.constraints = constraints
        self.call_engine(
            self.Counted,
            count_models,
            config,
            self.state.data,
            self.hardware,
            self.candidates[modality],
            self.time_budget_s,
            group="count",
            tag=(constraints, self.time_budget_s),
        )

    @on(CandidatesRead)
    def _candidates_read(self, reply: CandidatesRead) -> None:
        if reply.value is None:
            self.query_one("#hw-count", Static).update(Content.styled(f"Cannot list models: {reply.error}", "$error"))
            return
        self.candidates[reply.tag] = reply.value
        self._validate()

    @on(Counted)
    def _counted(self, reply: Counted) -> None:
        line = self.query_one("#hw-count", Static)
        if reply.value is None:
            line.update(Content.styled(f"Cannot count the models: {reply.error}", "$error"))
            return
        self.count = reply.value
        budget = fmt_seconds(self.time_budget_s) if self.time_budget_s else ""
        text = reply.value.text(budget)
        if reply.value.fit == 0:
            line.update(Content.styled(f"✗ {text}: relax a limit above", "$error"))
        else:
            line.update(Content(text))

    @staticmethod
    def _offline_text(on: bool) -> Content:
        return Content(" on: disk only" if on else " off")

    def _budget_text(self, con: ConstraintsConfig) -> Content:
        hw = self.hardware
        if hw is None:
            return Content.styled("Reading the hardware …", "$text-muted")
        device, available, budget_gb = memory_budget(hw, con)
        kind = "free GPU memory" if device.startswith("cuda") else "available RAM"
        if budget_gb < available:
            budget = f"{con.max_memory_gb:g} GB (your limit; {available:.1f} GB {kind})"
        else:
            budget = f"{available:.1f} GB ({kind})"
        return Content.assemble("Training on ", (device, "bold"), f" · memory budget {budget}")

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _form_changed(self) -> None:
        self._validate()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._validate()

    def action_next_step(self) -> None:
        if not self._validate():
            return
        if self.hardware is None:
            self.notify("Still reading the hardware; a moment please (F5 re-detects).", severity="warning", timeout=3)
            return
        self.goto("recommend")
