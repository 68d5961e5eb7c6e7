"""`make bench`: the figures the issues ask for, measured on this machine in one run."""

from __future__ import annotations

import sys

from bench import (
    control_plane,
    cutover,
    engine,
    engine_cpu,
    link_status,
    migration_hosts,
    replicas,
    sharded_copy,
    soak,
    verdict,
)


def main() -> int:
    failures = link_status.run()
    print()
    failures += engine.run()
    print()
    failures += engine_cpu.run()
    print()
    failures += control_plane.run()
    print()
    failures += verdict.run()
    print()
    failures += cutover.run()
    print()
    failures += replicas.run()
    print()
    failures += migration_hosts.run()
    print()
    failures += sharded_copy.run()
    print()
    failures += soak.run()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
