"""How long `import peerlog` and one `peerlog get` take, beside a bare Python start.

    python -m bench.startup [--runs 20]

Each figure is the median wall time of ``--runs`` fresh processes (as
`hyperfine` would measure), after one warm-up run so the file cache is warm.
The raw limit is ``python -c pass`` measured in the same run; ``first use``
is ``import peerlog; peerlog.Device`` (the package loads names lazily).  Goals:
``import peerlog`` at most 150 ms and ``peerlog get`` at most 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_ms(argv: list[str], runs: int) -> float:
    subprocess.run(argv, check=True, capture_output=True)  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"

        async def make() -> None:
            import peerlog

            async with peerlog.open(home) as device:
                await device.put("todos", "1", {"title": "milk"})

        asyncio.run(make())
        bare = median_ms([sys.executable, "-c", "pass"], runs)
        imported = median_ms([sys.executable, "-c", "import peerlog"], runs)
        # Names load on first use: this is what an app that opens a device pays.
        used = median_ms([sys.executable, "-c", "import peerlog; peerlog.Device"], runs)
        get = median_ms([sys.executable, "-m", "peerlog.cli", "--home", str(home), "get",
                         "todos", "1"], runs)
    print(f"python -c pass      {bare:7.1f} ms")
    print(f"import peerlog      {imported:7.1f} ms   (goal <= 150)   peerlog's own share "
          f"{imported - bare:.1f} ms")
    print(f"+ peerlog.Device    {used:7.1f} ms   (first use: the device, state and drivers load)")
    print(f"peerlog get         {get:7.1f} ms   (goal <= 300)")
    print(json.dumps({"runs": runs, "python_start_ms": round(bare, 1),
                      "import_ms": round(imported, 1), "first_use_ms": round(used, 1),
                      "get_ms": round(get, 1),
                      "import_over_bare_ms": round(imported - bare, 1)}))


if __name__ == "__main__":
    main()
