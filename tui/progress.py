"""Rich output for the command line: batch progress on stderr and the plain tables of
`recommend`, `hardware` and `runs`. (The Textual app lives in tui/app.py.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from modelwiz.engine.events import RunState

err = Console(stderr=True)
out = Console()


class BatchProgress:
    """Shows a batch run's events on stderr: phases as lines, training as a progress bar. The
    training figures come from the engine's one reducer (engine.events.RunState)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self.task: Any = None
        self.state = RunState()

    def __enter__(self) -> BatchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _line(self, text: str) -> None:
        self.progress.console.print(text)

    def on_event(self, ev: dict[str, Any]) -> None:
        st = self.state.apply(ev)
        kind = ev.get("event")
        if kind == "data_checked":
            d = ev["summary"]
            counts = ", ".join(f"{k} {v}" for k, v in d["class_counts"].items())
            self._line(
                f"data: {d['rows']} examples, {d['num_classes']} classes ({counts}); "
                f"{d['train_size']} train / {d['val_size']} validation"
            )
            for w in d.get("warnings", []):
                self._line(f"[yellow]warning:[/] {w}")
        elif kind == "hardware":
            h = ev["report"]
            gpus = ", ".join(g["name"] for g in h.get("gpus", [])) or "no GPU"
            self._line(
                f"hardware: {h['cpu_cores_logical']} CPU threads, {h['ram_available_gb']:.1f} GB RAM free, {gpus}"
            )
        elif kind == "model_chosen":
            self._line(
                f"model: [bold]{ev['name']}[/] ({ev['source']}, score {ev['score']:.2f}, predicted peak "
                f"{ev['est_train_memory_gb']:.1f} GB) — {ev['strategy']}, batch {ev['batch_size']}, {ev['precision']}"
            )
        elif kind == "run_created":
            self._line(f"run: {ev['run_id']} in {ev['run_dir']}")
        elif kind == "model":
            self._line(
                f"loaded {count(ev['params'])} parameters ({count(ev['trainable_params'])} trainable) "
                f"on {ev['device']} in {ev.get('load_seconds', 0):.1f} s"
            )
        elif kind == "plan":
            self.task = self.progress.add_task("training", total=st.total_steps, completed=st.step, info="")
        elif kind == "resumed":
            self._line(f"resuming from the last checkpoint: epoch {ev['epoch']}, step {ev['step']}")
        elif kind == "step" and self.task is not None:
            best = f" · best {st.metric} {st.best[st.metric]:.3f} (epoch {st.best_epoch})" if st.best else ""
            info = f"epoch {st.epoch} · loss {st.losses[-1][1]:.3f} · {st.samples_per_s or 0:.1f} samples/s{best}"
            self.progress.update(self.task, completed=st.step, info=info)
        elif kind == "eval":
            mark = " [green](best)[/]" if st.best_epoch == ev["epoch"] else ""
            self._line(
                f"epoch {ev['epoch']}: val loss {ev['val_loss']:.4f}, accuracy {ev['accuracy']:.4f}, "
                f"macro-F1 {ev['macro_f1']:.4f}{mark}"
            )
        elif kind == "log" and ev.get("level") in ("warning", "info"):
            # errors are not echoed here: the command ends with them as its one error line
            style = {"warning": "yellow"}.get(ev["level"], "dim")
            self._line(f"[{style}]{ev['message']}[/]")

    def print_summary(self, s: dict[str, Any]) -> None:
        m = s.get("metrics") or {}
        if s.get("status") == "completed":
            err.print(
                f"[green]done[/]: accuracy {m.get('accuracy') or 0:.4f}, macro-F1 {m.get('macro_f1') or 0:.4f} "
                f"(best epoch {s.get('best_epoch')}) · model in {s.get('model_path')}"
            )
            err.print(f'try it: modelwiz predict {s["run_id"]} "your input"')
        elif s.get("status") == "cancelled":
            err.print(f"[yellow]cancelled[/]: checkpoint kept; `modelwiz resume {s['run_id']}` continues it")


def count(n: float) -> str:
    """12_345_678 -> '12.3M', 22_051 -> '22.1K'."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return str(int(n))


def _gb(x: float) -> str:
    return f"{x:.1f}"


def print_recommendations(rec: Any, models: list[dict[str, Any]]) -> None:
    s = rec.summary
    out.print(
        f"[bold]{s.rows}[/] examples · {s.num_classes} classes · {rec.hardware.device_for()} · "
        f"{len(rec.ranked)} candidates"
    )
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, collapse_padding=True)
    widths = {"#": 2, "model": 22, "source": 7, "params": 6, "mem GB": 9, "fit": 3, "score": 5, "license": 10}
    for col, width in widths.items():
        table.add_column(
            col,
            justify="right" if col in ("#", "params", "mem GB", "score") else "left",
            no_wrap=True,
            overflow="ellipsis",
            min_width=width if col != "license" else None,
            max_width=width if col in ("license", "model") else None,
        )
    for i, (m, r) in enumerate(zip(models, rec.ranked, strict=False), 1):
        table.add_row(
            str(i),
            m["name"],
            m["source"],
            count(m["params"]),
            f"{_gb(m['est_train_memory_gb'])}/{_gb(m['memory_budget_gb'])}",
            "[green]yes[/]" if m["fits"] else "[red]no[/]",
            f"{r.ranking_score:.3f}",
            m["license"],
        )
    out.print(table)
    if models:
        out.print(f"[bold]why {models[0]['name']}:[/]")
        for r in models[0]["reasons"]:
            out.print(f"  • {r}")


def print_hardware(report: Any) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("CPU", f"{report.cpu_model} ({report.cpu_cores_physical} cores, {report.cpu_cores_logical} threads)")
    table.add_row("RAM", f"{report.ram_available_gb:.1f} GB available of {report.ram_total_gb:.1f} GB")
    if report.gpus:
        for g in report.gpus:
            table.add_row(
                f"GPU {g.index}",
                f"{g.name}: {g.free_gb:.1f} GB free of {g.total_gb:.1f} GB, compute "
                f"{g.compute_capability}, bf16 {'yes' if g.bf16 else 'no'}",
            )
    else:
        table.add_row("GPU", "none detected" + (f" ({report.probe_error})" if report.probe_error else ""))
    table.add_row("Apple MPS", "available" if report.mps else "no")
    table.add_row("Disk", f"{report.disk_free_gb:.1f} GB free at {report.disk_path}")
    if report.torch_version:
        table.add_row("torch", report.torch_version + (f" (CUDA {report.cuda_version})" if report.cuda_version else ""))
    table.add_row("Training device", report.device_for())
    out.print(table)


def print_runs(runs: list[Any], runs_dir: Path) -> None:
    if not runs:
        out.print(f"no runs in {runs_dir}")
        return
    table = Table(header_style="bold")
    for col in ("run id", "status", "model", "acc", "F1", "best", "started"):
        table.add_column(col, no_wrap=col in ("run id", "started", "status"), overflow="ellipsis")
    for r in runs:
        acc, f1 = r.metrics.get("accuracy"), r.metrics.get("macro_f1")
        table.add_row(
            r.run_id,
            r.state,
            Path(r.model).name if "/" in r.model and Path(r.model).is_absolute() else r.model,
            f"{acc:.4f}" if acc is not None else "–",
            f"{f1:.4f}" if f1 is not None else "–",
            f"ep {r.best_epoch}" if r.best_epoch else "–",
            time.strftime("%m-%d %H:%M", time.localtime(r.created)) if r.created else "–",
        )
    out.print(table)
    out.print(
        "acc and F1 are the best epoch's (by each run's \\[train] metric, default macro-F1): the exported model",
        style="dim",
    )
