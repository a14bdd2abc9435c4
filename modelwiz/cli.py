"""The `modelwiz` command: the wizard, headless batch runs and run management.

Exit codes: 0 success, 1 training or internal failure, 2 bad input/config/usage (one line on
stderr, never a traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

COMMANDS = {
    "recommend": "rank models for a config (no training)",
    "hardware": "show detected CPU, RAM, GPUs and disk",
    "runs": "list runs: id, status, model, best metric",
    "attach": "open the live dashboard of a run",
    "resume": "continue an interrupted run from its last checkpoint",
    "cancel": "stop a running run cleanly (checkpoint kept)",
    "predict": "predict with a run's exported model",
    "demo-config": "print the demo task's config (a working example to copy and edit)",
    "estimate-memory": "predicted training memory of one model and setting",
}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="modelwiz",
        description="Pick the right pretrained model for your task and hardware, then fine-tune it with live feedback.",
        epilog="Run `modelwiz COMMAND --help` for a command's options. Exit codes: 0 success, 1 training "
        "failure, 2 bad input or usage, 130 interrupted.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--demo", action="store_true", help="open the wizard on the built-in demo task (works offline)")
    p.add_argument("--theme", metavar="NAME", help="the wizard's colour theme (remembered; e.g. modelwiz-256)")
    p.add_argument(
        "--batch",
        metavar="CONFIG.toml",
        nargs="?",
        const="",
        help="headless: validate data, rank, fine-tune, export (`--batch --demo`: the demo task)",
    )
    p.add_argument("--json", action="store_true", help="with --batch: JSON lines on stdout (events, then a summary)")
    p.add_argument("--nproc", type=int, metavar="N", help="with --batch: train with N processes (torchrun, DDP)")
    p.add_argument(
        "--prepare",
        action="store_true",
        help="with --batch: create the run directory (config, plan.json) and print it; start no trainer",
    )
    p.add_argument(
        "--runs-dir", metavar="DIR", help="where runs live (default: [output] runs_dir, else $MODELWIZ_HOME/runs)"
    )
    p.add_argument("--version", action="store_true", help="print the version")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("recommend", help=COMMANDS["recommend"], description=COMMANDS["recommend"])
    r.add_argument("config", metavar="CONFIG.toml")
    r.add_argument("--json", action="store_true", help="one JSON object with a 'models' list, best first")
    r.add_argument("--top", type=int, default=10, metavar="N", help="how many models to show (default 10)")
    r.add_argument(
        "--probe",
        type=int,
        nargs="?",
        const=5,
        default=None,
        metavar="K",
        help="score the top K models on disk or downloadable (default 5) on a sample of your data "
        "(LogME, H-score) and re-rank them by LogME",
    )

    h = sub.add_parser("hardware", help=COMMANDS["hardware"], description=COMMANDS["hardware"])
    h.add_argument("--json", action="store_true")
    h.add_argument("--runs-dir", metavar="DIR", dest="sub_runs_dir")

    ru = sub.add_parser("runs", help=COMMANDS["runs"], description=COMMANDS["runs"])
    ru.add_argument("--json", action="store_true")
    ru.add_argument("--runs-dir", metavar="DIR", dest="sub_runs_dir")

    for name in ("attach", "resume", "cancel"):
        s = sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name])
        s.add_argument("run", metavar="RUN_ID", help="a run id (or unique prefix) or a run directory")
        s.add_argument("--runs-dir", metavar="DIR", dest="sub_runs_dir")
        if name == "resume":
            s.add_argument("--json", action="store_true", help="JSON lines on stdout, like --batch --json")
            s.add_argument("--detach", action="store_true", help="start the trainer and return at once")

    pr = sub.add_parser("predict", help=COMMANDS["predict"], description=COMMANDS["predict"])
    pr.add_argument("run", metavar="RUN_ID")
    pr.add_argument("inputs", metavar="INPUT", nargs="+", help="texts, or image paths for an image model")
    pr.add_argument("--json", action="store_true")
    pr.add_argument("--runs-dir", metavar="DIR", dest="sub_runs_dir")
    sub.add_parser("demo-config", help=COMMANDS["demo-config"], description=COMMANDS["demo-config"])

    em = sub.add_parser("estimate-memory", help=COMMANDS["estimate-memory"], description=COMMANDS["estimate-memory"])
    em.add_argument("model", metavar="MODEL", help="a Hub id, torchvision:NAME or a local model folder")
    em.add_argument("--strategy", default="full", choices=("full", "partial", "gradual", "linear-probe"))
    em.add_argument("--batch-size", type=int, default=16, metavar="N", help="examples per micro-batch (default 16)")
    size = em.add_mutually_exclusive_group()
    size.add_argument("--length", type=int, metavar="L", help="text: tokens per example (default 128)")
    size.add_argument("--image-size", type=int, metavar="PX", help="image: side in pixels (default: the model's own)")
    em.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    em.add_argument("--device", default="cpu", metavar="D", help="cpu, cuda, cuda:N or mps (default cpu)")
    em.add_argument("--num-labels", type=int, default=2, metavar="K", help="classes of the new head (default 2)")
    em.add_argument("--grad-accum", type=int, default=1, metavar="N", help="micro-batches per optimizer step")
    em.add_argument("--no-trace", action="store_true", help="never trace: use the formula where no trace exists")
    em.add_argument("--json", action="store_true", help="one JSON object (peak_gb, breakdown, total_gb, ...)")
    return p


def _runs_dir(args: argparse.Namespace) -> Path:
    from modelwiz.engine.runs import runs_dir_for

    return runs_dir_for(None, getattr(args, "sub_runs_dir", None) or args.runs_dir)


def _err(message: str) -> None:
    from modelwiz.engine.redact import redact

    print(f"modelwiz: error: {redact(message)}", file=sys.stderr)


# ---------------------------------------------------------------------------------- batch


class _Interrupt:
    """First Ctrl-C asks the trainer to stop cleanly; the second one stops waiting."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            print("\nmodelwiz: stopping the run (checkpoint kept); Ctrl-C again to stop waiting", file=sys.stderr)
        else:
            raise KeyboardInterrupt

    def requested(self) -> bool:
        return self.count > 0


def _json_sink(ev: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(ev, default=str) + "\n")
    sys.stdout.flush()


def _follow(args: argparse.Namespace, start: Callable[[Callable, Callable], dict[str, Any]]) -> int:
    interrupt = _Interrupt()
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        if args.json:
            summary = start(_json_sink, interrupt.requested)
            _json_sink(summary)
        else:
            from modelwiz.tui.progress import BatchProgress

            with BatchProgress() as view:
                summary = start(view.on_event, interrupt.requested)
            view.print_summary(summary)
    except KeyboardInterrupt:
        _err("stopped waiting; the run may still be stopping (see `modelwiz runs`)")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
    if summary.get("status") == "failed":
        _err(summary.get("error", "training failed"))
    return int(summary.get("exit_code", EXIT_FAIL))


def cmd_batch(args: argparse.Namespace) -> int:
    from modelwiz.engine.batch import run_batch
    from modelwiz.engine.config import load_config
    from modelwiz.engine.demo import demo_config

    config = load_config(args.batch) if args.batch else demo_config()
    if args.nproc is not None:
        if not 1 <= args.nproc <= 64:
            raise UsageError("--nproc must be between 1 and 64")
        config.train.nproc = args.nproc
    if args.prepare:
        created = run_batch(config, _json_sink if args.json else lambda ev: None, runs_dir=args.runs_dir, start=False)
        if not args.json:
            print(created["run_dir"])
        return EXIT_OK
    return _follow(args, lambda sink, stop: run_batch(config, sink, stop=stop, runs_dir=args.runs_dir))


def cmd_resume(args: argparse.Namespace) -> int:
    from modelwiz.engine.batch import follow_run, resume_run
    from modelwiz.engine.runs import resolve_run

    run_dir = resolve_run(args.run, _runs_dir(args))
    offset = (run_dir / "events.jsonl").stat().st_size if (run_dir / "events.jsonl").exists() else 0
    resume_run(run_dir)
    if args.detach:
        print(f"resumed {run_dir.name}; `modelwiz attach {run_dir.name}` to watch it")
        return EXIT_OK
    return _follow(args, lambda sink, stop: follow_run(run_dir, sink, stop=stop, offset=offset))


# ---------------------------------------------------------------------------------- others


def cmd_recommend(args: argparse.Namespace) -> int:
    from modelwiz.engine.config import load_config
    from modelwiz.engine.errors import UserError
    from modelwiz.engine.recommend import explain_empty
    from modelwiz.engine.workflow import recommend

    if args.top < 1:
        raise UsageError("--top must be at least 1")
    config = load_config(args.config)
    if args.probe is not None and args.probe < 1:
        raise UsageError("--probe K must be at least 1")
    rec = recommend(config)
    if not rec.ranked:
        raise UserError(explain_empty(config))
    probe_results = _probe(args, config, rec) if args.probe is not None else None
    models = [r.to_dict() for r in rec.ranked[: args.top]]
    if args.json:
        out = {
            "models": models,
            "data": rec.summary.to_dict(),
            "hardware": rec.hardware.to_dict(),
            "candidates": len(rec.ranked),
            "notes": rec.notes,
        }
        if probe_results is not None:
            out["probe"] = [p.to_dict() for p in probe_results]
        print(json.dumps(out, default=str))
        return EXIT_OK
    from modelwiz.tui.progress import print_recommendations

    print_recommendations(rec, models)
    for note in rec.notes:
        print(f"note: {note}")
    return EXIT_OK


def _probe(args: argparse.Namespace, config: Any, rec: Any) -> list[Any]:
    """`recommend --probe K`: transferability of the top K on the user's data (this process
    imports torch), progress as JSON lines or a Rich bar on stderr; re-ranks `rec.ranked`."""
    from modelwiz.engine import transfer
    from modelwiz.engine.hub import hub_offline

    offline = bool(config.constraints.offline) or hub_offline()
    kwargs = {"k": args.probe, "seed": config.train.seed, "offline": offline}
    if args.json:

        def sink(event: dict[str, Any]) -> None:
            print(json.dumps(event, default=str), flush=True)

        results = transfer.probe(rec.ranked, rec.data, sink=sink, **kwargs)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("probe", total=None)

            def show(event: dict[str, Any]) -> None:
                kind = event["event"]
                if kind == "probe_model":
                    bar.update(
                        task,
                        description=f"probe {event['index']}/{event['of']} {event['model'][-40:]}",
                        completed=0,
                        total=event["examples"],
                    )
                elif kind == "probe_progress":
                    bar.update(task, completed=event["done"])
                elif kind == "probe_result":
                    bar.console.print(
                        f"  {event['model']}: LogME {event['logme']:.3f}, H-score {event['h_score']:.2f} "
                        f"({event['seconds']:.1f} s{', cached' if event['cached'] else ''})"
                    )
                elif kind == "probe_failed":
                    bar.console.print(f"  {event['model']}: probe failed: {event['error']}")
                elif kind == "log":
                    bar.update(task, description=event["message"])

            results = transfer.probe(rec.ranked, rec.data, sink=show, **kwargs)
    rec.ranked = transfer.rerank(rec.ranked, results)
    return results


def cmd_hardware(args: argparse.Namespace) -> int:
    from modelwiz.engine.hardware import detect

    report = detect(_runs_dir(args))
    if args.json:
        print(json.dumps(report.to_dict()))
        return EXIT_OK
    from modelwiz.tui.progress import print_hardware

    print_hardware(report)
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from modelwiz.engine.runs import list_runs

    if not args.json and sys.stdout.isatty() and sys.stdin.isatty():
        from modelwiz.tui.app import run_runs  # a terminal: the runs screen (attach, resume, cancel)

        return run_runs(_runs_dir(args))
    runs = list_runs(_runs_dir(args))
    if args.json:
        print(json.dumps({"runs_dir": str(_runs_dir(args)), "runs": [r.to_dict() for r in runs]}))
        return EXIT_OK
    from modelwiz.tui.progress import print_runs

    print_runs(runs, _runs_dir(args))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from modelwiz.engine.errors import UserError
    from modelwiz.engine.runs import effective_state, read_status, request_cancel, resolve_run, wait_for_final

    run_dir = resolve_run(args.run, _runs_dir(args))
    if not request_cancel(run_dir):
        raise UserError(
            f"run {run_dir.name} is not running ({effective_state(read_status(run_dir))}); nothing to cancel"
        )
    print(f"cancelling {run_dir.name} …", file=sys.stderr)
    state = wait_for_final(run_dir, timeout_s=120)
    print(
        f"{run_dir.name}: {state}"
        + (f"; `modelwiz resume {run_dir.name}` continues it" if state == "cancelled" else "")
    )
    return EXIT_OK if state in ("cancelled", "completed", "failed") else EXIT_FAIL


def cmd_attach(args: argparse.Namespace) -> int:
    from modelwiz.engine.runs import resolve_run

    run_dir = resolve_run(args.run, _runs_dir(args))
    from modelwiz.tui.app import run_dashboard

    return run_dashboard(run_dir)


def cmd_predict(args: argparse.Namespace) -> int:
    from modelwiz.engine.predict import predict
    from modelwiz.engine.runs import resolve_run

    run_dir = resolve_run(args.run, _runs_dir(args))
    results = predict(run_dir, args.inputs)
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{r['label']}\t{r['score']:.3f}\t{r['input']}")
    return EXIT_OK


def cmd_demo_config(args: argparse.Namespace) -> int:
    from modelwiz.engine.demo import demo_config

    sys.stdout.write(demo_config().to_toml())
    return EXIT_OK


def cmd_estimate_memory(args: argparse.Namespace) -> int:
    import re

    from modelwiz.engine import memory
    from modelwiz.engine.errors import UserError

    for flag, value, low in (
        ("--batch-size", args.batch_size, 1),
        ("--length", args.length, 1),
        ("--image-size", args.image_size, 16),
        ("--num-labels", args.num_labels, 2),
        ("--grad-accum", args.grad_accum, 1),
    ):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be at least {low}")
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", args.device):
        raise UsageError(f"--device {args.device!r}: use cpu, cuda, cuda:N or mps")
    cand = memory.candidate_for_model(args.model)
    if cand.modality == "text" and args.image_size is not None:
        raise UsageError(f"{cand.id} is a text model: give --length, not --image-size")
    if cand.modality == "image" and args.length is not None:
        raise UsageError(f"{cand.id} is an image model: give --image-size, not --length")
    length = min(args.length or 128, int(cand.max_length or 512))
    image_size = args.image_size or int(cand.image_size or 224)
    strategy = "full" if args.strategy == "gradual" else args.strategy
    settings = dict(
        strategy=strategy,
        batch_size=args.batch_size,
        seq_len=length,
        image_size=image_size,
        precision=args.precision,
        device=args.device,
        num_labels=args.num_labels,
        grad_accum=args.grad_accum,
    )
    est = memory.estimate(cand, **settings)
    if est.method != "traced" and not args.no_trace:
        print(f"modelwiz: tracing {cand.name} once (cached for next time) …", file=sys.stderr)
        try:
            memory.trace_model(cand, strategies=(strategy,), precisions=(args.precision,))
            est = memory.estimate(cand, **settings)
        except UserError as exc:
            est.note = f"{exc}; the formula instead"
    out = {
        "model": cand.id,
        "modality": cand.modality,
        "strategy": args.strategy,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        ("length" if cand.modality == "text" else "image_size"): length if cand.modality == "text" else image_size,
        "precision": args.precision,
        "device": args.device,
        "num_labels": args.num_labels,
        "peak_gb": est.peak_gb,
        "weights_gb": est.weights_gb,
        "gradients_gb": est.gradients_gb,
        "optimizer_gb": est.optimizer_gb,
        "activations_gb": est.activations_gb,
        "runtime_overhead_gb": est.overhead_gb,
        "total_gb": est.total_gb,
        "trainable_params": est.trainable_params,
        "phases_gb": est.phases_gb,
        "peak_phase": est.peak_phase,
        "method": est.method,
        "note": est.note,
    }
    if args.json:
        print(json.dumps(out))
        return EXIT_OK
    shape = f"length {length}" if cand.modality == "text" else f"{image_size}px"
    print(
        f"{cand.id}: {args.strategy}, batch {args.batch_size}"
        f"{f' x {args.grad_accum}' if args.grad_accum > 1 else ''}, {shape}, {args.precision}, {args.device}"
    )
    print(
        f"  peak of live tensors  {est.peak_gb:8.3f} GB  ({est.method}{', at the ' + est.peak_phase if est.peak_phase else ''})"
    )
    for label, key in (
        ("weights", "weights_gb"),
        ("gradients", "gradients_gb"),
        ("optimizer state", "optimizer_gb"),
        ("activations", "activations_gb"),
    ):
        print(f"    {label:<20}{out[key]:8.3f} GB")
    for phase, gb in est.phases_gb.items():
        print(f"    at its {phase:<13}{gb:8.3f} GB")
    print(f"  runtime overhead      {est.overhead_gb:8.3f} GB")
    print(f"  must be free          {est.total_gb:8.3f} GB")
    if est.note:
        print(f"  ({est.note})")
    return EXIT_OK


def cmd_wizard(args: argparse.Namespace) -> int:
    from modelwiz.engine.demo import demo_config
    from modelwiz.tui.app import run_wizard

    config = demo_config() if args.demo else None
    return run_wizard(config, demo=args.demo, runs_dir=Path(args.runs_dir) if args.runs_dir else None, theme=args.theme)


def dispatch(args: argparse.Namespace) -> int:
    if args.version:
        from modelwiz import __version__

        print(f"modelwiz {__version__}")
        return EXIT_OK
    if args.batch is not None and args.command:
        raise UsageError("--batch runs on its own; drop the command or the --batch option")
    if args.batch == "" and not args.demo:
        raise UsageError("--batch needs a CONFIG.toml (or --demo for the built-in demo task)")
    if args.batch and args.demo:
        raise UsageError("give --batch either a CONFIG.toml or --demo, not both")
    if (args.nproc is not None or args.prepare) and args.batch is None:
        raise UsageError("--nproc and --prepare go with --batch")
    if args.batch is not None:
        return cmd_batch(args)
    if args.json and not args.command:
        raise UsageError("--json needs --batch or a command")
    handlers = {
        "recommend": cmd_recommend,
        "hardware": cmd_hardware,
        "runs": cmd_runs,
        "attach": cmd_attach,
        "resume": cmd_resume,
        "cancel": cmd_cancel,
        "predict": cmd_predict,
        "demo-config": cmd_demo_config,
        "estimate-memory": cmd_estimate_memory,
    }
    if args.command:
        return handlers[args.command](args)
    return cmd_wizard(args)


def main(argv: list[str] | None = None) -> int:
    from modelwiz.engine.errors import TrainingError, UserError

    try:
        args = build_parser().parse_args(argv)
        code = dispatch(args)
    except UsageError as exc:
        _err(str(exc))
        code = EXIT_USAGE
    except UserError as exc:
        _err(str(exc))
        code = EXIT_USAGE
    except TrainingError as exc:
        _err(str(exc))
        code = EXIT_FAIL
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        # output piped into e.g. `head`: not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_OK
    except Exception as exc:  # noqa: BLE001 - last resort: one line, details on request
        if os.environ.get("MODELWIZ_DEBUG"):
            raise
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _err(f"internal error: {type(exc).__name__}: {detail} (rerun with MODELWIZ_DEBUG=1 for the traceback)")
        code = EXIT_FAIL
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
