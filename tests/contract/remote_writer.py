"""Run in a separate OS process by the contract suite: open a store, write, report.

    python -m tests.contract.remote_writer OPENER_EXPR PEER_INT START COUNT

Prints ``committed`` once the batch is durable, then waits for its standard
input to close before closing the store.
"""

from __future__ import annotations

import asyncio
import sys

import peerlog
from tests.helpers import entries, peer


async def main(opener: str, who: int, start: int, count: int) -> None:
    replica = eval(opener, {"peerlog": peerlog})
    await replica.apply_many(peer(who), start, entries(start, count))
    print("committed", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await replica.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
