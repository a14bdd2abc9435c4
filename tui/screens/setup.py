"""Step 4 · Training setup: strategy, epochs, learning rate, batch size, precision. As values
change, the chosen model is re-ranked and re-planned (`Services.rerank`: the engine's `rank` for
one candidate, pure Python), so its score, reasons, fit, memory and time are never stale; the
plan shown is the very object `start_run` receives (the run's plan.json)."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static

from modelwiz.engine.config import PRECISIONS, SCHEDULES, STRATEGIES, TRAIN_RULES, Config, TrainConfig
from modelwiz.engine.errors import UserError
from modelwiz.engine.hardware import HardwareReport
from modelwiz.engine.plan import Plan
from modelwiz.engine.recommend import Ranked
from modelwiz.tui.base import EngineReply, StepScreen
from modelwiz.tui.dialogs import ConfirmDialog, MessageDialog, PathDialog
from modelwiz.tui.format import error_text, fmt_params, fmt_seconds, metric_name
from modelwiz.tui.messages import RunStarted, TrainingChanged
from modelwiz.tui.state import Services, WizardState

DEFAULT_SAVE_NAME = "modelwiz.toml"
READY = "ctrl+r starts training · ctrl+s saves the config"


def _int(text: str, what: str, lo: int, hi: int) -> int:
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what}: '{text}' is not a whole number") from None
    if not lo <= value <= hi:
        raise ValueError(f"{what}: must be between {lo} and {hi}, got {value}")
    return value


def parse_train(
    base: TrainConfig,
    *,
    modality: str,
    strategy: str,
    epochs: str,
    learning_rate: str,
    batch_size: str,
    precision: str,
    length: str,
) -> TrainConfig:
    """The setup form as a TrainConfig (other fields kept from `base`). Raises ValueError."""
    out = copy.deepcopy(base)
    out.strategy = strategy if strategy in STRATEGIES else "auto"
    out.precision = precision if precision in PRECISIONS else "auto"
    out.epochs = _int(epochs, "epochs", 1, 1000)
    lr = learning_rate.strip().lower()
    if lr in ("", "auto"):
        out.learning_rate = "auto"
    else:
        try:
            value = float(lr)
        except ValueError:
            raise ValueError(f"learning rate: '{learning_rate.strip()}' is not a number (e.g. 5e-5) or auto") from None
        if not 0 < value <= 1:
            raise ValueError("learning rate: must be above 0 and at most 1 (e.g. 5e-5)")
        out.learning_rate = value
    bs = batch_size.strip().lower()
    out.batch_size = "auto" if bs in ("", "auto") else _int(bs, "batch size", 1, 65536)
    if modality == "image":
        size = length.strip().lower()
        out.image_size = "auto" if size in ("", "auto") else _int(size, "image size", 16, 2048)
    else:
        out.max_length = _int(length, "max length", 8, 8192)
    return out


# the trainer's recipe keys on the form: (key, label, placeholder); schedule and augment are lists
RECIPE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("grad_accum", "Accumulation", "micro-batches per step, e.g. 2"),
    ("patience", "Patience", "epochs without a better metric; 0: off"),
    ("unfreeze_blocks", "Unfreeze", "top blocks trained (partial, gradual); auto"),
    ("layer_decay", "Layer decay", "LR x decay per block from the top; 1: off"),
)


def recipe_value(key: str, text: str) -> object:
    """A recipe field as the config file would have it, checked by the config's own rule for
    `[train] key` (so the form refuses exactly what `--batch` refuses). Raises ValueError."""
    import tomllib

    text = text.strip()
    try:
        raw = tomllib.loads(f"v = {text}")["v"] if text else "auto"
    except tomllib.TOMLDecodeError:
        raw = text  # a bare word: auto, cosine, ...
    try:
        return TRAIN_RULES[key]("train", key, raw, "")
    except UserError as exc:
        raise ValueError(str(exc)) from None


def auto_on_off(id_: str, tooltip: str | None = None) -> Select[str]:
    """A setting that is "auto", on (true) or off (false), as the config file spells them."""
    return Select(
        [("auto", "auto"), ("on", "true"), ("off", "false")],
        value="auto",
        allow_blank=False,
        compact=True,
        id=id_,
        tooltip=tooltip,
    )


def apply_recipe(train: TrainConfig, recipe: dict[str, str]) -> TrainConfig:
    out = copy.deepcopy(train)
    for key, text in recipe.items():
        setattr(out, key, recipe_value(key, text))
    return out


def gpu_name(plan: Plan, hardware: HardwareReport | None) -> str:
    """The name of the GPU the plan trains on ('' for CPU, MPS or unknown)."""
    if hardware is None or not plan.device.startswith("cuda"):
        return ""
    idx = int(plan.device.split(":")[1]) if ":" in plan.device else 0
    return next((g.name for g in hardware.gpus if g.index == idx), "")


def plan_table(
    r: Ranked, train: TrainConfig, hardware: HardwareReport | None, contenders: list[Ranked] | None = None
) -> Table:
    """The chosen model's score, plan and reasons under the settings `train`; `contenders`: a
    bake-off's (the chosen model first)."""
    plan = r.plan
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()

    def auto(value: str, setting: object) -> str:
        return f"{value} (auto)" if setting == "auto" else value

    m = plan.memory
    name = gpu_name(plan, hardware)
    table.add_row("Score", f"{r.ranking_score:.3f}")
    table.add_row("Device", Text(plan.device + (f" · {name}" if name else "")))
    table.add_row("Strategy", auto(plan.strategy, train.strategy))
    accum = f" × {plan.grad_accum} accumulated = {plan.effective_batch}" if plan.grad_accum > 1 else ""
    table.add_row("Batch size", auto(str(plan.batch_size), train.batch_size) + accum)
    table.add_row("Precision", auto(plan.precision, train.precision))
    table.add_row("Learning rate", auto(f"{plan.learning_rate:.0e}", train.learning_rate))
    table.add_row("Best by", metric_name(plan.metric) + (" (lowest)" if plan.metric == "val_loss" else ""))
    if contenders:
        names = ", ".join(c.candidate.name for c in contenders)
        share = f"{train.bakeoff_share:.0%}"
        table.add_row(
            "Bake-off",
            Text(f"{len(contenders)} race ({names}) for {share} of a run's time; the winner trains on"),
        )
    fits = Text(" ✓ fits", style="green") if plan.fits else Text(" ✗ does not fit", style="bold red")
    table.add_row("Memory", Text.assemble(f"{m.total_gb:.2f} of {plan.budget_gb:.1f} GB", fits))
    table.add_row(
        "",
        Text(
            f"weights {m.weights_gb:.2f} · grads {m.gradients_gb:.2f} · optimizer "
            f"{m.optimizer_gb:.2f} · activations {m.activations_gb:.2f} · other {m.overhead_gb:.2f}",
            style="dim",
        ),
    )
    table.add_row("Trainable", f"{fmt_params(m.trainable_params)} M of {fmt_params(r.candidate.params)} M params")
    table.add_row("Time/epoch", f"≈ {fmt_seconds(plan.epoch_seconds)}")
    table.add_row(
        "Total", f"≈ {fmt_seconds(plan.total_seconds)} for {plan.epochs} epoch{'s' if plan.epochs != 1 else ''}"
    )
    for i, reason in enumerate(r.reasons):
        table.add_row("Why" if i == 0 else "", Text("• " + reason))
    for i, note in enumerate(plan.notes):
        table.add_row("Plan" if i == 0 else "", Text("• " + note))
    return table


class SetupScreen(StepScreen):
    STEP = "setup"
    HELP_NOTES: ClassVar[tuple[str, ...]] = (
        "Score, reasons, predicted memory and time update as you type; 'auto' picks a value for this "
        "model and hardware.",
        "Strategy: linear-probe trains only a new head; partial also the top third; full everything.",
        "ctrl+s saves the config as TOML (for `modelwiz --batch`); ctrl+r starts training in a separate "
        "process that survives closing the terminal.",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "start", "Train"),
        Binding("ctrl+s", "save", "Save config"),
        Binding("ctrl+n", "next_step", "Next", show=False),
    ]

    class StartReply(EngineReply):
        """`value`: the new run's directory."""

    class MeasureReply(EngineReply):
        """`value`: the chosen model ranked again once its architecture was traced and counted."""

    def __init__(self, state: WizardState, services: Services) -> None:
        super().__init__(state, services)
        self.error = ""
        self.config: Config | None = None  # the wizard's config with this form's settings
        self.ranked: Ranked | None = None  # the chosen model ranked under `config`: what is shown
        self.starting = False
        self._filled_for: tuple[str, str] | None = None
        self.contenders: list[Ranked] | None = None  # a bake-off's, the chosen model first
        self.measuring = False
        self._measured: set[str] = set()  # models traced and counted (or tried) in this session

    @property
    def plan(self) -> Plan | None:
        return self.ranked.plan if self.ranked else None

    def compose_body(self) -> Iterable[Widget]:
        yield Static("", id="setup-model")
        yield Static("", id="setup-status", classes="status-line")  # above the form: never scrolled away
        with Horizontal(id="setup-panels"):
            with VerticalScroll(id="setup-form") as form:
                form.border_title = "Settings"
                with Horizontal(classes="form-row"):
                    yield Label("Strategy", classes="field-label")
                    yield Select(
                        [(s, s) for s in STRATEGIES], value="auto", allow_blank=False, compact=True, id="strategy"
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Epochs", classes="field-label")
                    yield Input("3", id="epochs", compact=True)
                with Horizontal(classes="form-row"):
                    yield Label("Learning rate", classes="field-label")
                    yield Input("auto", id="learning-rate", compact=True, placeholder="auto or e.g. 5e-5")
                with Horizontal(classes="form-row"):
                    yield Label("Batch size", classes="field-label")
                    yield Input("auto", id="batch-size", compact=True, placeholder="auto or e.g. 16")
                with Horizontal(classes="form-row"):
                    yield Label("Precision", classes="field-label")
                    yield Select(
                        [(p, p) for p in PRECISIONS], value="auto", allow_blank=False, compact=True, id="precision"
                    )
                with Horizontal(classes="form-row"):
                    yield Label("Max length", classes="field-label", id="length-label")
                    yield Input("128", id="length", compact=True)
                for key, label, hint in RECIPE_FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Label(label, classes="field-label")
                        yield Input("", id=f"recipe-{key}", compact=True, placeholder=hint)
                with Horizontal(classes="form-row"):
                    yield Label("Schedule", classes="field-label")
                    yield Select(
                        [(x, x) for x in SCHEDULES], value="linear", allow_blank=False, compact=True, id="schedule"
                    )
                with Horizontal(classes="form-row", id="augment-row"):
                    yield Label("Augment", classes="field-label")
                    yield auto_on_off("augment")
                with Horizontal(classes="form-row", id="grouping-row"):
                    yield Label("Group length", classes="field-label")
                    yield auto_on_off(
                        "group-by-length",
                        "[train] group_by_length: each step's texts of similar length (less padding); "
                        "auto: from 200 steps an epoch",
                    )
            with VerticalScroll(id="plan-box") as box:
                box.border_title = "Predicted"
                yield Static("", id="plan")

    def on_screen_resume(self) -> None:
        chosen = self.state.chosen
        if chosen is None:
            return
        key = (chosen.candidate.id, self.state.config.task.modality)
        if self._filled_for != key:
            self._fill_form()
            self._filled_for = key
        self._recompute()
        self.query_one("#epochs", Input).focus()

    # ------------------------------------------------------------------ form

    def _fill_form(self) -> None:
        train = self.state.config.train
        image = self.state.config.task.modality == "image"
        with self.prevent(Input.Changed, Select.Changed):
            self.query_one("#strategy", Select).value = train.strategy
            self.query_one("#precision", Select).value = train.precision
            self.query_one("#epochs", Input).value = str(train.epochs)
            self.query_one("#learning-rate", Input).value = str(train.learning_rate)
            self.query_one("#batch-size", Input).value = str(train.batch_size)
            self.query_one("#length", Input).value = str(train.image_size if image else train.max_length)
            for key, _, _ in RECIPE_FIELDS:
                self.query_one(f"#recipe-{key}", Input).value = str(getattr(train, key))
            self.query_one("#schedule", Select).value = train.schedule
            augment = train.augment
            self.query_one("#augment", Select).value = augment if augment == "auto" else str(bool(augment)).lower()
            grouped = train.group_by_length
            self.query_one("#group-by-length", Select).value = (
                grouped if grouped == "auto" else str(bool(grouped)).lower()
            )
        self.query_one("#augment-row").display = image
        self.query_one("#grouping-row").display = not image
        self.query_one("#length-label", Label).update("Image size" if image else "Max length")
        c = self.state.chosen.candidate if self.state.chosen else None
        if c is not None:
            self.query_one("#setup-model", Static).update(
                Content.assemble(
                    ("Model ", "bold"),
                    c.name,
                    f" · {c.source} · {fmt_params(c.params)}M params · license {c.license}",
                    (" · on disk" if c.on_disk else " · will be downloaded", "$text-muted"),
                )
            )

    def _read_form(self) -> TrainConfig:
        def select(id_: str) -> str:
            value = self.query_one(id_, Select).value
            return value if isinstance(value, str) else "auto"

        recipe = {key: self.query_one(f"#recipe-{key}", Input).value for key, _, _ in RECIPE_FIELDS}
        recipe["schedule"] = select("#schedule")
        if self.state.config.task.modality == "image":
            recipe["augment"] = select("#augment")
        else:
            recipe["group_by_length"] = select("#group-by-length")
        train = parse_train(
            self.state.config.train,
            modality=self.state.config.task.modality,
            strategy=select("#strategy"),
            precision=select("#precision"),
            epochs=self.query_one("#epochs", Input).value,
            learning_rate=self.query_one("#learning-rate", Input).value,
            batch_size=self.query_one("#batch-size", Input).value,
            length=self.query_one("#length", Input).value,
        )
        return apply_recipe(train, recipe)

    def _recompute(self) -> bool:
        """Read the form, re-rank the chosen model under it, redraw, and tell the app. False (with
        the reason on the status line) when the form is invalid or the model cannot be ranked."""
        chosen, data, hardware = self.state.chosen, self.state.data, self.state.hardware
        if chosen is None or data is None or hardware is None:
            return False
        try:
            train = self._read_form()
            config = copy.deepcopy(self.state.config)
            config.train = train
            ranked = self.services.rerank(config, data, hardware, chosen.candidate)
            if chosen.probe and not chosen.probe.get("error") and chosen.probe.get("evidence") is not None:
                from modelwiz.engine.transfer import reblend

                # the evidence of the models step's probe holds under any settings; the prior is new
                ranked.probe = reblend(chosen.probe, ranked.score)
            contenders = self._contenders(config, ranked)
        except ValueError as exc:  # the form: one line naming the field
            return self._failed(str(exc))
        except Exception as exc:  # a model that cannot be planned is shown, never raised
            return self._failed(error_text(exc))
        self.error = ""
        self.config, self.ranked = config, ranked
        self.post_message(TrainingChanged(train, ranked))
        self.contenders = contenders
        self.query_one("#plan", Static).update(plan_table(ranked, train, hardware, contenders))
        if not self.starting and not self._measure(config, ranked):
            self._status(READY, "info")
        return True

    def _measure(self, config: Config, ranked: Ranked) -> bool:
        """Trace and count the chosen model in a worker when its architecture has neither yet (its
        figures are the formula's until then); whether that is under way."""
        from modelwiz.engine.workflow import needs_measuring

        cid = ranked.candidate.id
        if self.measuring or cid in self._measured or not needs_measuring(ranked):
            return self.measuring
        data, hardware = self.state.data, self.state.hardware
        self.measuring = True
        self._status(
            f"… {ranked.candidate.name}: tracing its training step once (memory and time; cached for next time) …",
            "busy",
        )
        self.call_engine(
            self.MeasureReply, self.services.measure, config, data, hardware, ranked, group="measure", tag=cid
        )
        return True

    @on(MeasureReply)
    def _measured_reply(self, reply: MeasureReply) -> None:
        self.measuring = False
        self._measured.add(str(reply.tag))
        if reply.value is None:
            self._status("✗ " + (reply.error or "could not trace the model; its figures are the formula's"), "error")
            return
        self._recompute()

    def _failed(self, error: str) -> bool:
        self.error = error
        self._status("✗ " + error, "error")
        return False

    def _status(self, text: str, kind: str) -> None:
        status = self.query_one("#setup-status", Static)
        status.update(Content(text))
        status.set_classes(f"status-line -{kind}")

    @on(Input.Changed)
    @on(Select.Changed)
    def _form_changed(self) -> None:
        self._recompute()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._recompute()

    # ------------------------------------------------------------------ actions

    def action_next_step(self) -> None:
        self.notify("Press ctrl+r to start training (ctrl+s saves the config first).", timeout=4)

    def action_start(self) -> None:
        if self.starting:
            return
        if not self._recompute() or self.config is None or self.ranked is None:
            self.notify(self.error or "Choose a model first.", severity="error", timeout=4)
            return
        config, ranked = copy.deepcopy(self.config), self.ranked
        if ranked.fits:
            self._begin(config, ranked)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._begin(config, ranked)

        self.app.push_screen(
            ConfirmDialog(
                "Predicted memory exceeds the budget",
                f"{ranked.plan.memory.total_gb:.1f} GB predicted, {ranked.plan.budget_gb:.1f} GB available: training "
                "may run out of memory. Start anyway?",
            ),
            confirmed,
        )

    def _contenders(self, config: Config, ranked: Ranked) -> list[Ranked] | None:
        """A bake-off's contenders as the engine will pick them (`workflow.bakeoff_contenders`:
        the chosen model, then the marked or best-ranked that fit); None without a bake-off.
        Raises UserError when the settings cannot race (fewer than 2 fit, [model] id set)."""
        rows = self.state.bakeoff_contenders()
        if rows is None:
            return None
        from modelwiz.engine.workflow import bakeoff_contenders

        return bakeoff_contenders(config, ranked, rows)

    def _begin(self, config: Config, ranked: Ranked) -> None:
        """Start the run of `ranked`: the plan on screen is the plan the run gets."""
        self.starting = True
        self._status("… Starting the trainer …", "busy")
        rows = self.state.bakeoff_contenders() if config.train.bakeoff else None
        self.call_engine(self.StartReply, self.services.start_run, config, ranked, rows, group="start-run")

    @on(StartReply)
    def _run_started(self, reply: StartReply) -> None:
        self.starting = False
        self._status(READY, "info")
        if reply.value is None:
            self.app.push_screen(MessageDialog("Could not start training", reply.error))
            return
        self.post_message(RunStarted(Path(reply.value)))

    @work(exclusive=True, group="save")
    async def action_save(self) -> None:
        if not self._recompute() or self.config is None or self.ranked is None:
            self.notify(self.error or "Choose a model first.", severity="error", timeout=4)
            return
        config = copy.deepcopy(self.config)  # what a `--batch` run needs to repeat this session
        # a bake-off chooses the model itself: --batch refuses [model] id beside it, and races the
        # top K ranked that fit (a TOML cannot name the marked contenders)
        config.model.id = "" if config.train.bakeoff else self.ranked.candidate.id
        answer = await self.app.push_screen_wait(
            PathDialog(
                "Save the config as TOML",
                DEFAULT_SAVE_NAME,
                hint="A path, relative to the current folder · enter saves · Esc / ctrl+b cancels",
            )
        )
        if not answer:
            return
        path = Path(answer).expanduser()
        if path.is_dir():
            path = path / DEFAULT_SAVE_NAME
        if path.exists():
            overwrite = await self.app.push_screen_wait(
                ConfirmDialog("Overwrite?", f"{path} already exists. Replace it?", yes="Overwrite", no="Keep")
            )
            if not overwrite:
                self.notify("Not saved: the existing file was kept.", timeout=3)
                return
        try:
            config.save(path)
        except OSError as exc:
            await self.app.push_screen_wait(
                MessageDialog("Could not save", f"cannot write {path}: {exc.strerror or exc}")
            )
            return
        race = (
            f" Its bake-off races the top {config.train.bakeoff} ranked models that fit."
            if config.train.bakeoff
            else ""
        )
        self.notify(f"Saved {path}. Run it headless: modelwiz --batch {path}.{race}", timeout=6)
