"""Where the simulator's specimens and tests come from: the LIS's pending orders, or made up.

* ``--from-config lis.toml``: read the pending orders straight from the LIS database
  (:func:`lis.services.host_query.pending_specimen_ids` / ``pending_orders``), test codes translated to the
  profile's instrument codes (:mod:`drivers.host_orders`).
* ``--from-lis URL --token T``: the same through the REST API (``GET /api/v1/orders?status=...``).
* otherwise random accession numbers with the profile's test codes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from drivers.host_orders import instrument_codes
from drivers.profile import Profile
from drivers.simulator.messages import default_codes, random_specimen_id
from lis.services.host_query import PendingSpecimen, PendingTest


@dataclass(frozen=True, slots=True)
class Sample:
    specimen_id: str
    codes: tuple[str, ...]
    qc: bool = False


def pending_from_config(config_path: Path, profile: Profile, instrument: str = "", limit: int = 500) -> list[Sample]:
    """Pending specimens from the LIS database named in ``config_path``."""
    from lis.config import load_config
    from lis.db import Database
    from lis.services.host_query import pending_orders, pending_specimen_ids

    config = load_config(config_path, env={})
    db = Database.from_url(config.database_url)
    try:
        with db.read() as session:
            ids = pending_specimen_ids(session, limit)
            found = pending_orders(session, instrument, ids).found
    finally:
        db.dispose()
    return [Sample(s.specimen_id, codes) for s in found if (codes := instrument_codes(s, profile))]


def pending_from_api(base_url: str, token: str, profile: Profile, limit: int = 500) -> list[Sample]:
    """Pending specimens through the LIS REST API (orders with status ``ordered`` or ``in_progress``)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    samples: list[Sample] = []
    with httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=10) as client:
        for status in ("ordered", "in_progress"):
            response = client.get("/api/v1/orders", params={"status": status, "limit": min(limit, 1000)})
            response.raise_for_status()
            for order in response.json():
                tests = tuple(PendingTest(t["code"]) for t in order["tests"] if t["status"] == "ordered")
                for specimen in order["specimens"]:
                    pending = PendingSpecimen(specimen_id=specimen["specimen_id"], tests=tests)
                    codes = instrument_codes(pending, profile)
                    if codes:
                        samples.append(Sample(specimen["specimen_id"], codes))
    return samples


def sample_stream(profile: Profile, rng: random.Random, pending: list[Sample], *, tests_per_message: int = 0,
                  qc_every: int = 0, refill: Callable[[], list[Sample]] | None = None) -> Iterator[Sample]:
    """Endless samples: the pending ones first (asking ``refill`` for more when they run out), then made-up
    ones; every ``qc_every``-th one is a QC sample."""
    codes = default_codes(profile)
    n = 0
    queue = list(pending)
    done: set[str] = set()
    while True:
        if not queue and refill is not None:
            queue = [s for s in refill() if s.specimen_id not in done]
        n += 1
        if qc_every and n % qc_every == 0:
            k = tests_per_message or min(len(codes), 5)
            chosen = tuple(rng.sample(codes, min(k, len(codes))))
            yield Sample(f"QC{rng.randrange(1, 4)}-{rng.randrange(10**6):06d}", chosen, qc=True)
            continue
        if queue:
            sample = queue.pop(0)
            done.add(sample.specimen_id)
            yield sample
            continue
        k = tests_per_message or rng.randrange(3, min(len(codes), 12) + 1)
        chosen = tuple(rng.sample(codes, k)) if k <= len(codes) else tuple(codes[i % len(codes)] for i in range(k))
        yield Sample(random_specimen_id(rng), chosen)
