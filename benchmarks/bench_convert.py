"""Converter benchmark: kubecircus convert vs dcm2niix vs SimpleITK, interleaved, same machine.

Makes a synthetic 512x512x300 CT series (unsigned 12-bit stored values, intercept -1024, shuffled
file names), then runs each tool ROUNDS times in rotation as separate processes under GNU time,
and prints median wall time, median peak RSS and ratios against dcm2niix. Goals (from the
converter issue): kubecircus <= 1.0x dcm2niix's time; kubecircus peak memory <= 1.5x the volume.

    make bench            # or: .venv/bin/python benchmarks/bench_convert.py [--rounds N] [--slices N]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicomfactory import SeriesSpec, make_slices, save

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
        ["/usr/bin/time", "-f", "%e %M", *command], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr[-2000:]}")
    seconds, rss = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    dcm2niix = shutil.which("dcm2niix")
    if not dcm2niix or not Path("/usr/bin/time").exists():
        raise SystemExit("needs dcm2niix and GNU time: run `make deps`")
    kubecircus = str(Path(sys.executable).with_name("kubecircus"))
    with tempfile.TemporaryDirectory(prefix="kubecircus-bench-") as tmp:
        work = Path(tmp)
        volume_bytes = make_series(work / "series", args.slices)
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
        for round_ in range(args.rounds):
            for name, command in tools.items():
                out = work / f"{name}-{round_}"
                out.mkdir()
                results[name].append(timed(command(out)))
                shutil.rmtree(out)
    base_time = statistics.median(t for t, _ in results["dcm2niix"])
    print(
        f"series: 512x512x{args.slices} CT, {volume_bytes / 2**20:.0f} MiB as MET_SHORT; {args.rounds} rounds"
    )
    print(f"{'tool':<12}{'median s':>10}{'x dcm2niix':>12}{'peak MiB':>10}{'x volume':>10}")
    for name, runs in results.items():
        seconds = statistics.median(t for t, _ in runs)
        peak = statistics.median(m for _, m in runs) * 1024
        ratio, share = seconds / base_time, peak / volume_bytes
        print(f"{name:<12}{seconds:>10.2f}{ratio:>12.2f}{peak / 2**20:>10.0f}{share:>10.2f}")


if __name__ == "__main__":
    main()
