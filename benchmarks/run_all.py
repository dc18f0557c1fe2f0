"""Run every benchmark in this folder (``make bench``), one after another, in routine (quick) mode.

Each ``bench_*.py`` prints its figures and the command that produced them; copy them into BENCHMARKS.md
together with the machine. Pass ``--full`` to run the large configurations (minutes to tens of minutes each).
"""

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    failed = []
    for script in sorted(here.glob("bench_*.py")):
        print(f"\n=== {script.name} ===", flush=True)
        if subprocess.run([sys.executable, str(script), *argv]).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
