"""Fuzz the gateway's collection path: random and mutated GATT payloads through the
collectors' notification callbacks and read paths into a real outbox (gateway/fuzz.py).

    .venv/bin/python benchmarks/fuzz_gateway.py --payloads 100000
    .venv/bin/python benchmarks/fuzz_gateway.py --smoke

Prints payloads, crashes (must be 0), readings stored and undecodable values kept; exit
status 1 on any crash.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.fuzz import as_dict, run
from tests.device_profiles.test_fuzz import SEEDS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payloads", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="2,000 payloads (CI)")
    args = ap.parse_args()
    n = 2_000 if args.smoke else args.payloads
    logging.disable(logging.WARNING)  # every undecodable value is logged; kept in the outbox anyway
    t0 = time.perf_counter()
    result = run(n, seed=args.seed, seeds=list(SEEDS))
    doc = {**as_dict(result), "seconds": round(time.perf_counter() - t0, 1), "seed": args.seed}
    print(json.dumps(doc, indent=2))
    return 1 if result.crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
