"""Boot time of Asterisk with the project's module list vs. Debian's stock ``autoload=yes``.

Both boots go through the local runner (chroot of the cached root filesystem) and
are timed from start until ``core waitfullybooted`` returns and ARI answers.
The baseline swaps only ``modules.conf`` for Debian's stock one (``autoload=yes``
and its few ``noload`` lines); everything else is the project's configuration.

    sudo .venv/bin/python bench/bench_asterisk_boot.py [--runs 3] [--baseline-timeout 120]

Needs root (chroot). Uses free ports and a throwaway instance; stops it at the end.
Target: our module set boots in under a second (the claim in docs/provisioning.md).
Exits 1 when missed, 3 under CI without root (bench/verdict.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from verdict import Verdicts  # noqa: E402

from controlplane.asterisk.runner import (  # noqa: E402
    AsteriskError, LocalRunner, recipe_dir,
)
from controlplane.config import AsteriskConfig, AsteriskRunMode, Config  # noqa: E402


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_tcp_port() -> int:
    while True:
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def boot_once(runner: LocalRunner) -> float:
    runner.down()
    started = time.monotonic()
    runner.up()
    elapsed = time.monotonic() - started
    runner.down()
    return elapsed


BOOT_TARGET_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="boots of our module set (median reported)")
    parser.add_argument("--baseline-timeout", type=float, default=120.0)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    verdicts = Verdicts("bench_asterisk_boot")
    if os.geteuid() != 0:
        print("needs root (the local runner uses chroot)", file=sys.stderr)
        verdicts.skipped("boot of our module set", "needs root (the local runner uses chroot)")
        return verdicts.finish()

    with tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp:
        data = Path(tmp)

        def config(timeout: float) -> Config:
            return Config(data_dir=str(data), asterisk=AsteriskConfig(
                run=AsteriskRunMode.LOCAL, instance=f"bench{os.getpid()}", boot_timeout=timeout,
                sip_port=free_udp_tcp_port(), http_port=free_port(), ami_port=free_port()))

        ours = LocalRunner(config(30.0))
        # Debian's stock modules.conf, everything else ours.
        stock_dir = data / "stock-etc"
        shutil.copytree(recipe_dir() / "etc", stock_dir)
        stock = Path(ours.rootfs) / "etc/asterisk/modules.conf"
        (stock_dir / "modules.conf").write_bytes(
            stock.read_bytes() if stock.exists() else b"[modules]\nautoload = yes\n")
        baseline = LocalRunner(config(args.baseline_timeout), template_dir=stock_dir)

        results: dict[str, float | str] = {}
        try:
            times = [boot_once(ours) for _ in range(max(1, args.runs))]
            results["ours"] = statistics.median(times)
            modules = (ours.template_dir or recipe_dir() / "etc") / "modules.conf"
            count = sum(1 for line in modules.read_text().splitlines() if line.startswith("load"))
            print(f"our module set ({count} modules): boots {', '.join(f'{t:.2f}' for t in times)} s;"
                  f" median {results['ours']:.2f} s")
            if not args.skip_baseline:
                try:
                    results["baseline"] = boot_once(baseline)
                    print(f"autoload=yes baseline (Debian stock modules.conf): {results['baseline']:.2f} s")
                except AsteriskError as exc:
                    results["baseline"] = f"did not boot within {args.baseline_timeout:.0f} s"
                    print(f"autoload=yes baseline: {results['baseline']}\n{str(exc)[-1500:]}")
        finally:
            for runner in (ours, baseline):
                runner.down()
                shutil.rmtree(runner.instance_dir, ignore_errors=True)

    if isinstance(results.get("baseline"), float):
        ratio = float(results["baseline"]) / float(results["ours"])
        print(f"ratio: autoload boots {ratio:.1f}x slower than our module set")
        verdicts.info("autoload=yes boot / ours", ratio, "x")
    elif "baseline" in results:
        verdicts.info("autoload=yes baseline did not boot within (s)", args.baseline_timeout, "s")
    verdicts.below("boot of our module set to FullyBooted + ARI, median", float(results["ours"]), BOOT_TARGET_S, "s")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"(rootfs {ours.rootfs}; {os.cpu_count()} CPUs, load average {load})")
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
