"""The ``attentionlite`` command line: a thin click layer over the library.

Each command parses its options, calls one library function and prints or
writes the result.  torch and matplotlib are imported inside the commands that
need them, so ``--help`` and the simulator's commands start fast.  Bad input
raises :class:`~attentionlite.errors.InputError`; it is printed as one line and
the command exits with status 2.
"""

from __future__ import annotations

import sys

import click

from attentionlite import __version__
from attentionlite.errors import InputError


class _Group(click.Group):
    """A click group that turns :class:`InputError` into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="attentionlite")
def main() -> None:
    """AttentionLite: what a pruned, distilled self-attention model buys on an
    attention accelerator and on a CPU, compared with the CNN it replaces.

    \b
    Pipeline:  train -> checkpoint -> trace -> simulate / cpu -> compare, sweep, report
    Start with `attentionlite report` (built-in default, no dataset needed).
    """


def _not_yet(issue: int):
    raise click.ClickException(f"this command is not built yet (tracked in issue {issue})")


@main.command()
def models() -> None:
    """List the registered models with parameters and dense MACs. (not built yet)"""
    _not_yet(2)


@main.command()
def train() -> None:
    """Sparse distillation: train a (pruned) student from a teacher. (not built yet)"""
    _not_yet(3)


@main.command()
def evaluate() -> None:
    """Accuracy of a checkpoint on a dataset's test split. (not built yet)"""
    _not_yet(3)


@main.command()
def compact() -> None:
    """Turn a column-pruned checkpoint into a smaller dense model. (not built yet)"""
    _not_yet(3)


@main.command()
def trace() -> None:
    """Trace a model or checkpoint into an operator graph. (not built yet)"""
    _not_yet(4)


@main.command()
def simulate() -> None:
    """Simulate a model on the parallel attention accelerator. (not built yet)"""
    _not_yet(5)


@main.command()
def hardware() -> None:
    """List the accelerator presets or show one resolved config. (not built yet)"""
    _not_yet(5)


@main.command()
def calibrate() -> None:
    """Micro-benchmark this machine and write a CPU config. (not built yet)"""
    _not_yet(6)


@main.command()
def cpu() -> None:
    """Predict (and measure) a model's latency on a CPU. (not built yet)"""
    _not_yet(6)


@main.command()
def compare() -> None:
    """Teacher vs students on one design point. (not built yet)"""
    _not_yet(7)


@main.command()
def sweep() -> None:
    """Sweep hardware knobs over models. (not built yet)"""
    _not_yet(7)


@main.command()
def report() -> None:
    """The co-design report (the main job). (not built yet)"""
    _not_yet(7)
