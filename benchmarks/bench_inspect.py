"""Benchmark: how fast `icanets inspect` rejects each bad input of the catalogue.

Issue 12 asks that every bad case fail before any heavy work, within seconds. This runs the
catalogue of ``tests/test_bad_inputs.py`` (each case a change to a copy of the simulated tiny
study) through ``icanets inspect`` in-process and prints, per case, the exit status, the
seconds it took and the first line of the message; then the same for the pristine copy with
``--check-data`` (every image read through) and, for scale, the time of the ICA stage on the
pristine copy (the first heavy stage those checks run before).

Usage: python benchmarks/bench_inspect.py [--seed 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icanets.cli import main as icanets  # noqa: E402
from icanets.simulate import simulate_study  # noqa: E402
from tests.test_bad_inputs import CASES  # noqa: E402


def _inspect(root: Path, flags: list[str]) -> tuple[int, float, str]:
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = icanets(["inspect", str(root / "bids"), "--config", str(root / "study.toml"), *flags])
    seconds = time.perf_counter() - start
    text = err.getvalue().strip() or next((line.strip() for line in out.getvalue().splitlines()
                                           if "differ only" in line or "fewer than" in line), "")
    return status, seconds, text.splitlines()[0] if text else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="icanets-bench-inspect-"))
    try:
        pristine = simulate_study(work / "pristine", "tiny", seed=args.seed).root
        shutil.rmtree(pristine / "truth")
        print(f"{'case':<38}{'exit':>5}{'seconds':>9}  message")
        times = []
        for name, (change, flags, expected, _) in CASES.items():
            root = work / "case"
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(pristine, root)
            change(root)
            status, seconds, message = _inspect(root, flags)
            times.append(seconds)
            flag = "" if status == expected else f"  (expected exit {expected})"
            print(f"{name:<38}{status:>5}{seconds:>9.2f}  {message[:110]}{flag}")
        status, checked, _ = _inspect(pristine, ["--check-data"])
        print(f"{'pristine copy, --check-data':<38}{status:>5}{checked:>9.2f}")
        from icanets.config import load_config
        from icanets.pipeline import ica_stage
        from icanets.runner import ica_settings_from
        from icanets.study import load_study

        config = load_config(pristine / "study.toml")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = load_study(config=config)
            start = time.perf_counter()
            ica_stage(study.runs, work / "ica", ica_settings_from(config)[0], tr=study.tr, mask=config.mask)
        heavy = time.perf_counter() - start
        print(f"\n{len(times)} cases: slowest {max(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s; "
              f"the ICA stage they run before: {heavy:.1f} s on this tiny study "
              f"({heavy / max(times):.0f}x the slowest check)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
