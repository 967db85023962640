"""A LIS process that only runs the outbox worker (for the kill -9 test): ``python outbox_child.py URL PORT DIR``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from interfaces.wiring import build_worker
from interfaces.worker import OutboxSettings
from lis.config import Config, EmrConfig
from lis.db import Database


async def main(url: str, port: int, data_dir: str) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = Config(data_dir=Path(data_dir), database={"url": url},
                    emr=[EmrConfig(name="his", kind="hl7-mllp", port=port, timeout_seconds=2)])
    worker = build_worker(Database.from_url(url), config,
                          settings=OutboxSettings(backoff_base=0.05, backoff_cap=0.5, idle_poll=0.2,
                                                          prepare_processes=0))
    await worker.start()
    print("started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
