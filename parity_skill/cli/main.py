"""Command line: parse, run the pipeline, print, pick the exit code. The only module that prints."""
from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import click

from parity_skill import __version__
from parity_skill.cli.terminal import Status, color_enabled, paint
from parity_skill.errors import (EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED, InputError, ParityError, RunError,
                                 exit_code_for)
from parity_skill.cli.options import (PLAN_OPTIONS, _options, _options_of, parse_target,
                                       split_targets)

HELP = """Check that two implementations compute the same thing.

\b
  parity-skill a.py vs b.py                       pair every class/function found in both
  parity-skill a.py::Attention vs b.py::Attention
  parity-skill my_norm.py::LayerNorm vs torch.nn.LayerNorm

Exit code: 0 parity holds, 1 a check fails, 2 could not check."""


def _emit_error(message: str, as_json: bool, code: int = EXIT_ERROR) -> int:
    from parity_skill.report import error_report

    if as_json:
        click.echo(json.dumps(error_report(message), indent=2))
    click.echo(f"parity-skill: error: {message}", err=True)
    return code


def check(targets, as_json, emit, timeout, debug, python_a=None, python_b=None, ref=None, python_ref=None,
          **opts) -> int:
    import time

    target_a, target_b = split_targets(targets)
    target_c = parse_target(ref, allow_reference=True) if ref else None
    if target_c and target_c.path and not Path(target_c.path).is_file():
        raise InputError(f"--ref {ref}: {target_c.path}: no such file")
    deadline = time.monotonic() + timeout
    rep = _run_pair(target_a, target_b, python_a, python_b, emit, timeout, debug, opts)
    if ref:
        from parity_skill.compare.attribution import attribute_runs

        runs = []
        for target, python in ((target_a, python_a), (target_b, python_b)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RunError(f"--ref {ref}: timed out after {timeout:g}s (the three runs share --timeout)")
            # C is the reference of both runs (a file); a framework reference can only be side B
            pair = (target_c, target, python_ref, python) if target_c.path else (target, target_c, python, python_ref)
            try:
                runs.append(_run_pair(*pair, None, left, debug, opts))
            except ParityError as exc:  # A vs B stands; C could not settle anything
                for entry in rep["pairs"]:
                    entry["notes"] = [*entry.get("notes", []), f"--ref {ref}: C could not be compared ({exc})"]
                return _print_report(rep, as_json)
        attribute_runs(rep, *runs, ref=ref, c_first=bool(target_c.path))
    return _print_report(rep, as_json)


def _run_pair(target_a, target_b, python_a, python_b, emit, timeout, debug, opts) -> dict:
    """One pair of sides, each in its own process: the report (a side that ends without one is a RunError)."""
    from parity_skill.analyze.hierarchy import run_by
    from parity_skill.run.processes import Worker, frameworks_in

    run_by(target_a.path, python_a)
    run_by(target_b.path, python_b)

    warm_a = frameworks_in([target_a.path]) if target_a.path else [target_a.symbol.split(".")[0]]
    warm_b = frameworks_in([target_b.path]) if target_b.path else [target_b.symbol.split(".")[0]]
    workers = []
    try:  # the sides' interpreters import their frameworks while we analyse
        if (python_a or sys.executable) == (python_b or sys.executable):  # one zygote forks both sides
            workers.append(Worker(list(dict.fromkeys(warm_a + warm_b)), python_a))
        else:
            workers.append(Worker(warm_a, python_a))
            workers.append(Worker(warm_b, python_b))
        return _check(workers, target_a, target_b, emit, timeout, debug, opts)
    finally:
        for w in workers:
            w.close()


def _check(workers, target_a, target_b, emit, timeout, debug, opts) -> dict:
    from parity_skill.plan.planner import build_plan
    from parity_skill.render.script import render_script
    from parity_skill.run.processes import Completed, TimedOut, run_sides

    status = Status()
    status("analyse")
    plan = build_plan(target_a, target_b, _options(**opts))
    tmp = None
    if emit:
        script = emit
    else:
        tmp = tempfile.mkdtemp(prefix="parity-")
        script = os.path.join(tmp, "parity_check.py")
    try:
        Path(script).write_text(render_script(plan, script), encoding="utf-8")
        if emit:
            click.echo(f"parity-skill: wrote {emit}", err=True)
        status("start sides")
        outcome = run_sides(workers, script, timeout, status)
    finally:
        status.clear()
        if tmp and not debug:
            Path(script).unlink(missing_ok=True)
            os.rmdir(tmp)
    pair = f"{target_a.display} vs {target_b.display}"
    if isinstance(outcome, TimedOut):
        raise RunError(f"{pair}: timed out after {outcome.seconds:g}s (raise --timeout, or shrink the inputs with "
                       "--input)")
    if not isinstance(outcome, Completed):
        worker = workers[0] if outcome.side == "A" or len(workers) == 1 else workers[1]
        missing = worker.missing_runtime()
        if missing:
            raise RunError(f"side {outcome.side}'s interpreter {worker.python} cannot run parity-skill's runtime "
                           f"({missing}): install parity-skill in that environment and run again")
        tail = [ln for ln in outcome.output.strip().splitlines() if ln.strip()]
        how = "ended the process" if outcome.returncode == 0 else f"crashed (exit {outcome.returncode})"
        raise RunError(f"{pair}: side {outcome.side} {how} before a verdict: {tail[-1] if tail else 'no output'}"
                       + (f"; the script is kept at {script}" if emit or debug else
                          "; rerun with --debug (or --emit check.py) to keep the script"))
    outcome.report["unpaired"] = {side: list(names) for side, names in plan.unpaired.items()}
    return outcome.report


def _print_report(rep: dict, as_json: bool) -> int:
    from parity_skill.report import render_text

    out = click.get_current_context().meta.get("parity_output", {})
    drawn = None
    if out.get("plot"):
        from parity_skill.report.plot import draw

        drawn = draw(rep, out["plot"])
        click.echo(f"parity-skill: wrote {out['plot']} ({drawn})" if drawn else
                   "parity-skill: no chart drawn: no pair has a per-submodule profile (it is traced when forward "
                   "fails; add --isolate to trace a passing pair)", err=True)
    if as_json:
        click.echo(json.dumps(rep, indent=2))
    elif out.get("format") == "md":
        from parity_skill.report.markdown import render_markdown

        # stdout is read as a file of the current folder (`> report.md`): the chart is linked relative to it
        chart = os.path.relpath(os.path.abspath(out["plot"])) if drawn else None
        click.echo(render_markdown(rep, chart.replace(os.sep, "/") if chart else None), nl=False)
    elif rep["pairs"]:  # also when nothing could be checked: what was planned, and what to change
        text = render_text(rep)
        click.echo(paint(text) if out.get("color") else text, nl=False)
    if rep["verdict"] == "error":
        click.echo(f"parity-skill: error: {rep['error']}", err=True)
    return exit_code_for(rep["verdict"])


class _Command(click.Command):
    """A file whose name starts with a dash ("-a.py") is a target, not a cluster of short options."""

    def parse_args(self, ctx, args):
        protected = ["./" + a if a.startswith("-") and os.path.isfile(a.partition("::")[0]) else a for a in args]
        return super().parse_args(ctx, protected)


def _output(f):
    """Takes --format/--plot/--no-color off the command's arguments into the context (`_print_report` reads them);
    `--format json` is `--json`."""
    @functools.wraps(f)
    def wrapper(*args, fmt, plot, no_color, **kwargs):
        if plot:
            from parity_skill.report.plot import require

            try:
                require(plot)
            except InputError as exc:
                sys.exit(_emit_error(str(exc), kwargs.get("as_json") or fmt == "json"))
        kwargs["as_json"] = kwargs.get("as_json") or fmt == "json"
        click.get_current_context().meta["parity_output"] = {"format": "json" if kwargs["as_json"] else fmt,
                                                             "plot": plot, "color": color_enabled(no_color)}
        return f(*args, **kwargs)
    return wrapper


RUN_OPTIONS = _options_of(
    click.option("--json", "as_json", is_flag=True, help="Print the JSON report (parity-report/1); = --format json."),
    click.option("--format", "fmt", type=click.Choice(["text", "json", "md"]), default="text", show_default=True,
                 help="Report format: text, json, or md (Markdown for a pull request)."),
    click.option("--plot", type=click.Path(dir_okay=False),
                 help="Also draw the per-submodule error profile to FILE.png|svg (needs matplotlib: [plot])."),
    click.option("--no-color", is_flag=True, help="No colour, even on a terminal (also NO_COLOR, TERM=dumb)."),
    click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds before the run is stopped."),
    click.option("--debug", is_flag=True, help="Show tracebacks and keep the generated script."),
    _output,
)


def _guarded(as_json: bool, debug: bool, work) -> int:
    """Run a command; every failure becomes one stderr line (and a JSON error report with --json) and an exit code."""
    from parity_skill.run.processes import Terminated, interrupt_on_sigterm

    interrupt_on_sigterm()
    try:
        return work()
    except ParityError as exc:
        if debug:
            traceback.print_exc()
        return _emit_error(str(exc), as_json)
    except Terminated:
        return _emit_error("terminated (SIGTERM); the worker was stopped", as_json, EXIT_TERMINATED)
    except KeyboardInterrupt:
        return _emit_error("interrupted; the worker was stopped", as_json, EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - a bug of ours: still one line and exit 2, the traceback on --debug
        if debug:
            traceback.print_exc()
        return _emit_error(f"internal error ({type(exc).__name__}: {exc}); rerun with --debug and report it", as_json)


class _Group(click.Group):
    """`parity-skill A vs B` runs the default command, `check`; subcommands are named first."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help", "--version"):
            args = ["check", *args]
        return super().parse_args(ctx, args)

    def shell_complete(self, ctx, incomplete):
        """The first word is a subcommand or, as `parity-skill a.py vs b.py` reads it, a file."""
        from click.shell_completion import CompletionItem

        names = super().shell_complete(ctx, incomplete)
        return names if incomplete.startswith("-") else names + [CompletionItem(incomplete, type="file")]


@click.group(cls=_Group, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="parity-skill")
def cli() -> None:
    pass


@cli.command("check", cls=_Command, context_settings={"help_option_names": ["-h", "--help"]},
             help="A vs B, each side in its own process (the default command).")
@click.argument("targets", nargs=-1, required=True, type=click.Path())
@click.option("--emit", type=click.Path(dir_okay=False), help="Also write the parity script here (it is run too).")
@click.option("--emit-test", type=click.Path(dir_okay=False),
              help="Also write a pytest file here, with A's artifact as a fixture folder beside it.")
@click.option("--python-a", type=click.Path(dir_okay=False), help="Interpreter for side A (another venv or version).")
@click.option("--python-b", type=click.Path(dir_okay=False), help="Interpreter for side B.")
@click.option("--ref", type=click.Path(), help="A third implementation C (FILE.py::Name or a reference): C is also "
              "compared with A and with B, and each failing check is attributed to the side that disagrees with the "
              "other two (three runs).")
@click.option("--python-ref", type=click.Path(dir_okay=False), help="Interpreter for --ref's side.")
@RUN_OPTIONS
@PLAN_OPTIONS
def check_command(targets, as_json, emit, emit_test, timeout, debug, python_a, python_b, ref, python_ref,
                  **opts) -> None:
    def work() -> int:
        if python_ref and not ref:
            raise InputError("--python-ref is the interpreter of --ref's side; give --ref FILE.py::Name")
        code = check(targets, as_json, emit, timeout, debug, python_a, python_b, ref, python_ref, **opts)
        if emit_test:
            from parity_skill.cli.emit_test import emit_test as write_test, plan_flags

            click.echo(write_test(targets, emit_test, timeout, debug, python_a, opts, plan_flags(),
                                  passed=code == 0), err=True)
        return code
    sys.exit(_guarded(as_json, debug, work))


@cli.command("capture", cls=_Command, context_settings={"help_option_names": ["-h", "--help"]},
             help="Phase 1: run A alone and write its artifact (manifest.json + safetensors) into a folder.")
@click.argument("target", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="The artifact folder.")
@click.option("--force", is_flag=True, help="Replace an artifact already in the folder.")
@click.option("--python-a", type=click.Path(dir_okay=False), help="Interpreter for side A.")
@RUN_OPTIONS
@PLAN_OPTIONS
def capture_command(target, output, force, as_json, timeout, debug, python_a, **opts) -> None:
    def work() -> int:
        from parity_skill.compare import phases
        from parity_skill.analyze.hierarchy import run_by

        target_a = parse_target(target, allow_reference=False)
        run_by(target_a.path, python_a)
        plan = phases.plan_capture(target_a, _options(**opts))
        phases.prepare_folder(output, force)
        phases.capture_into(target_a, plan, output, timeout, debug, python_a)
        line = {"artifact": output, "symbol": plan.pairs[0].a.display}
        click.echo(json.dumps(line) if as_json else f"captured {line['symbol']} into {output}")
        return 0
    sys.exit(_guarded(as_json, debug, work))


@cli.command("compare", cls=_Command, context_settings={"help_option_names": ["-h", "--help"]},
             help="Phase 2: run B alone against A's artifact folder (the same report as `A vs B`), or compare "
                  "two artifact folders stage by stage (B written by any program).")
@click.argument("artifact", type=click.Path())
@click.argument("target", type=click.Path())
@click.option("--min-correlation", type=float,
              help="Two artifacts: a stage passes when its Pearson correlation is at least this (e.g. 0.95).")
@click.option("--tolerances", type=click.Path(dir_okay=False), help="Two artifacts: per-stage tolerances, "
              "`PATTERN LEVEL|ATOL` per line (e.g. `vae.* chain`, `encoder.layers.* 1e-4`); the first match wins.")
@click.option("--ref", type=click.Path(), help="Two artifacts: a third implementation's artifact; each differing "
              "stage is attributed to the side that disagrees with the other two.")
@click.option("--emit", type=click.Path(dir_okay=False), help="Also write the parity script here (it is run too).")
@click.option("--python-b", type=click.Path(dir_okay=False), help="Interpreter for side B.")
@RUN_OPTIONS
@PLAN_OPTIONS
def compare_command(artifact, target, emit, as_json, timeout, debug, python_b, min_correlation, tolerances, ref,
                    **opts) -> None:
    def work() -> int:
        from parity_skill.compare import phases
        from parity_skill.run.processes import Worker, frameworks_in

        if Path(target).is_dir() or Path(target).suffix in (".safetensors", ".npy", ".npz"):  # two artifacts
            return _print_report(phases.compare_two(artifact, target, opts, min_correlation, timeout, ref, tolerances),
                                 as_json)
        if tolerances:
            raise InputError("--tolerances applies to two artifacts (compare A_DIR B_DIR); running code takes --level "
                             "and --atol")
        if ref:
            raise InputError("--ref takes a third artifact when two artifacts are compared (record each "
                             "implementation, then compare A_DIR B_DIR --ref C_DIR); with running code, run "
                             "`parity-skill a.py::X vs b.py::X --ref c.py::X`")
        from parity_skill.analyze.hierarchy import run_by

        target_b = parse_target(target, allow_reference=True)
        run_by(target_b.path, python_b)
        plan = phases.plan_compare(artifact, target_b, _options(**opts))
        warm = frameworks_in([target_b.path]) if target_b.path else [target_b.symbol.split(".")[0]]
        worker = Worker(warm, python_b)
        script, tmp = phases.render_to(plan, emit, debug)
        try:
            rep = phases.run_compare(worker, script, artifact, timeout)
        finally:
            worker.close()
            phases.cleanup(tmp)
        return _print_report(rep, as_json)
    sys.exit(_guarded(as_json, debug, work))


def _register() -> None:
    from parity_skill.cli.assistants import install_command, uninstall_command

    cli.add_command(install_command)
    cli.add_command(uninstall_command)


_register()


def main(prog_name: str | None = None) -> None:
    """Console entry point: click's usage errors become the same one-line error (and JSON report with --json)."""
    args = sys.argv[1:]
    try:
        cli.main(args, prog_name=prog_name or "parity-skill", standalone_mode=False)
    except click.UsageError as exc:
        sys.exit(_emit_error(exc.format_message(), "--json" in args))
    except click.Abort:
        sys.exit(_emit_error("interrupted", "--json" in args, EXIT_INTERRUPTED))
