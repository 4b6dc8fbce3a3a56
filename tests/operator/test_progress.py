"""The plug-in progress line: parsed strictly, composed by ranges, never trusted beyond 0..1."""

from __future__ import annotations

import pytest

from kubecircus.progress import latest, line, parse_line


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("CIRCUS_PROGRESS 0.25", 0.25),
        ("  CIRCUS_PROGRESS 1  ", 1.0),
        ("CIRCUS_PROGRESS 3/12", 0.25),
        ("CIRCUS_PROGRESS 0.5 0.2 0.6", 0.4),  # half of the stage that is 20..60 % of the run
        ("CIRCUS_PROGRESS 2/4 0.5 1", 0.75),
        ("CIRCUS_PROGRESS 7", 1.0),  # clamped to its stage
        ("CIRCUS_PROGRESS -1 0.5 1", 0.5),
        ("CIRCUS_PROGRESS nan", None),
        ("CIRCUS_PROGRESS inf", None),
        ("CIRCUS_PROGRESS 1/0", None),
        ("CIRCUS_PROGRESS 0.5 0.8 0.2", None),  # a stage that ends before it starts
        ("CIRCUS_PROGRESS 0.5 0 1.5", None),
        ("CIRCUS_PROGRESS 0.5 0.1", None),
        ("CIRCUS_PROGRESS", None),
        ("progress 0.5", None),
        ("echo CIRCUS_PROGRESS 0.5", None),  # only a line of its own counts
        ("CIRCUS_PROGRESS 0.5 extra words", None),
    ],
)
def test_a_progress_line(text, value):
    got = parse_line(text)
    assert got == pytest.approx(value) if value is not None else got is None


def test_the_last_valid_line_of_the_tail_wins():
    tail = "loading\nCIRCUS_PROGRESS 0.2\nsegmenting\nCIRCUS_PROGRESS 0.6\nCIRCUS_PROGRESS garbage\nsaving\n"
    assert latest(tail) == pytest.approx(0.6)
    assert latest("no progress here\n") is None
    assert latest("") is None


@pytest.mark.parametrize(("value", "start", "end"), [(0.0, 0.0, 1.0), (0.5, 0.0, 1.0), (0.25, 0.4, 0.8)])
def test_what_a_plugin_prints_reads_back(value, start, end):
    assert parse_line(line(value, start, end)) == pytest.approx(start + value * (end - start))
