"""Converter benchmark: kubecircus convert vs dcm2niix vs SimpleITK, interleaved, same machine.

For each size (default 300 and 1,200 slices) it makes a synthetic 512x512xN CT series (unsigned
12-bit stored values, intercept -1024, shuffled file names), runs each tool ROUNDS times in
rotation as separate processes under GNU time, and prints median wall time, median peak RSS and
ratios against dcm2niix measured in the same run. GNU time's peak is the largest single process;
kubecircus may fork header workers, so one more, untimed run samples the whole process tree's
proportional set size (PSS: shared pages counted once) and prints its peak too. Goals (from the
converter issue): kubecircus <= 1.5x dcm2niix's time at 1,200 slices (stretch: 1.0x); peak memory
<= 1.5x the volume.

    make bench            # or: .venv/bin/python benchmarks/bench_convert.py [--rounds N] [--slices N ...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicomfactory import SeriesSpec, make_slices, save

ROOT = Path(__file__).resolve().parents[1]

#: The kubecircus entry point imports the package its editable install points at, which is
#: another checkout when this one is a git worktree sharing the virtualenv: put this tree first.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

SITK_SCRIPT = textwrap.dedent(
    """
    import sys, SimpleITK as sitk
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(sys.argv[1]))
    sitk.WriteImage(reader.Execute(), sys.argv[2] + "/0.mhd")
    """
)


def make_series(folder: Path, slices: int) -> int:
    spec = SeriesSpec(
        rows=512,
        columns=512,
        slices=slices,
        slice_step=1.0,
        pixel_spacing=(0.7, 0.7),
        signed=False,
        bits_stored=12,
        value_range=(0, 4095),
        slope=1,
        intercept=-1024,
    )
    names = [f"{n:08d}.dcm" for n in random.Random(1).sample(range(10**7), slices)]
    save(make_slices(spec), folder, names)
    return 512 * 512 * slices * 2  # bytes of the MET_SHORT output


def timed(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run, from GNU time."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *command],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        env=ENV,
    )
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr[-2000:]}")
    seconds, rss = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(rss)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):  # the process ended meanwhile
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo.extend(int(child) for child in (task / "children").read_text().split())
    return found


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="utf-8").splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_peak(command: list[str]) -> int:
    """Peak total PSS (KiB) of the process tree of one (untimed) run, sampled every 5 ms."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, sum(_pss_kib(pid) for pid in _tree(process.pid)))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, stderr = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {stderr.decode(errors='replace')[-2000:]}")
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--slices", type=int, nargs="+", default=[300, 1200], help="series sizes (default 300 1200)"
    )
    args = parser.parse_args()
    dcm2niix = shutil.which("dcm2niix")
    if not dcm2niix or not Path("/usr/bin/time").exists():
        raise SystemExit("needs dcm2niix and GNU time: run `make deps`")
    summary = [bench_size(slices, args.rounds, dcm2niix) for slices in args.slices]
    print()
    print("kubecircus / dcm2niix: " + ", ".join(f"{slices} slices {ratio:.2f}x" for slices, ratio in summary))


def bench_size(slices: int, rounds: int, dcm2niix: str) -> tuple[int, float]:
    """Runs and prints one size; returns (slices, kubecircus time / dcm2niix time)."""
    kubecircus = str(Path(sys.executable).with_name("kubecircus"))
    with tempfile.TemporaryDirectory(prefix="kubecircus-bench-") as tmp:
        work = Path(tmp)
        volume_bytes = make_series(work / "series", slices)
        tools = {
            "kubecircus": lambda out: [kubecircus, "convert", str(work / "series"), str(out)],
            "dcm2niix": lambda out: [
                dcm2niix,
                "-z",
                "n",
                "-b",
                "n",
                "-f",
                "vol",
                "-o",
                str(out),
                str(work / "series"),
            ],
            "simpleitk": lambda out: [sys.executable, "-c", SITK_SCRIPT, str(work / "series"), str(out)],
        }
        results: dict[str, list[tuple[float, int]]] = {name: [] for name in tools}
        for name, command in tools.items():  # warm the page cache and the interpreters once
            out = work / f"warm-{name}"
            out.mkdir()
            timed(command(out))
        for round_ in range(rounds):
            for name, command in tools.items():
                out = work / f"{name}-{round_}"
                out.mkdir()
                results[name].append(timed(command(out)))
                shutil.rmtree(out)
        (work / "tree").mkdir()
        tree = tree_peak(tools["kubecircus"](work / "tree")) * 1024
    base_time = statistics.median(t for t, _ in results["dcm2niix"])
    print(f"series: 512x512x{slices} CT, {volume_bytes / 2**20:.0f} MiB as MET_SHORT; {rounds} rounds")
    print(f"{'tool':<12}{'median s':>10}{'x dcm2niix':>12}{'peak MiB':>10}{'x volume':>10}")
    for name, runs in results.items():
        seconds = statistics.median(t for t, _ in runs)
        peak = statistics.median(m for _, m in runs) * 1024
        ratio, share = seconds / base_time, peak / volume_bytes
        print(f"{name:<12}{seconds:>10.2f}{ratio:>12.2f}{peak / 2**20:>10.0f}{share:>10.2f}")
    print(
        f"kubecircus process tree (PSS, one untimed run): {tree / 2**20:.0f} MiB, "
        f"{tree / volume_bytes:.2f}x volume"
    )
    return slices, statistics.median(t for t, _ in results["kubecircus"]) / base_time


if __name__ == "__main__":
    main()
