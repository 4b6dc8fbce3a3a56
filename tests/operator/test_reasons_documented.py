"""Every reason a job can end with is explained in docs/operator.md, with what to do: a new
reason in the code without its row there fails this test."""

from __future__ import annotations

import re
from pathlib import Path

from kubecircus.worker.report import JOB_FAULTS

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "kubecircus" / "operator"
#: fail(s, "Reason", ...), finish(s, Phase.X, "Reason", ...), refusals returning ("Reason", message)
PATTERNS = [
    r'fail\(\s*s,\s*"([A-Z][A-Za-z]+)"',
    r'finish\(\s*s,\s*Phase\.[A-Z]+,\s*"([A-Z][A-Za-z]+)"',
    r'return\s+"([A-Z][A-Za-z]+)",\s*f?"',
    r'\(\s*"([A-Z][A-Za-z]+)",\s*\n\s*f"',  # a refusal tuple written over two lines
]


def reasons_in_code() -> set[str]:
    found = set(JOB_FAULTS)
    for source in OPERATOR.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            found |= set(re.findall(pattern, text))
    return found


def test_every_end_reason_has_a_row_with_what_to_do():
    table = (ROOT / "docs" / "operator.md").read_text(encoding="utf-8")
    rows = {
        m
        for line in table.splitlines()
        if line.startswith("| `")
        for m in re.findall(r"`([A-Z]\w+)`", line.split("|")[1])
    }
    reasons = reasons_in_code()
    assert {"ExitCode", "Timeout", "NameConflict", "InfrastructureFailure", "ImageNotPinned"} <= reasons
    missing = reasons - rows
    assert not missing, f"reasons without a row in docs/operator.md: {sorted(missing)}"
    for line in table.splitlines():
        if line.startswith("| `") and line.count("|") == 6:
            assert line.split("|")[4].strip(), f"no 'what to do' in: {line}"
