"""Benchmark: what a checkpoint download costs the fetch worker's CPU, hashing included; huggingface_hub's own
download (which does not hash) of the same file beside it.

    python benchmarks/checkpoint_download.py --root /tmp/download-bench [--mb 1024] [--json out.json]

A local hub server (`python -m raygems.hub.serve`, another process, no bandwidth limit) serves one repository
holding a config and an `--mb` MB model.safetensors of random bytes; this process downloads it with
`raygems.hub.download.download` (sha256 while the bytes arrive) and with `huggingface_hub.hf_hub_download`. Over
loopback the Python server shares the CPUs with the client, so the wall time says little about a real link; the
client's CPU seconds per GB are what a fetch worker spends whatever the link. The machine is often shared: the
load average is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(call) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _cpu_seconds()
    call()
    return time.perf_counter() - wall, _cpu_seconds() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="scratch folder (emptied): the served repo and the downloads")
    parser.add_argument("--mb", type=int, default=1024, help="size of model.safetensors in MB (default 1024)")
    parser.add_argument("--json", dest="json_out", help="write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if args.mb < 1:
        parser.error(f"--mb must be >= 1, got {args.mb}")

    root = Path(args.root)
    shutil.rmtree(root, ignore_errors=True)
    repo = root / "hub" / "bench" / "model"
    repo.mkdir(parents=True)
    (repo / "config.json").write_text(json.dumps({"model_type": "bench"}))
    with (repo / "model.safetensors").open("wb") as handle:
        for _ in range(args.mb):
            handle.write(os.urandom(1_000_000))
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    server = subprocess.Popen([sys.executable, "-m", "raygems.hub.serve", str(root / "hub")], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        endpoint = server.stdout.readline().split(" at ")[1].split()[0]
        while select.select([server.stdout], [], [], 600)[0]:      # wait until the server has hashed the file
            if server.stdout.readline().startswith("hashed"):
                break
        os.environ.pop("HF_HUB_OFFLINE", None)
        from huggingface_hub import hf_hub_download

        from raygems.hub.download import download, plan_download

        plan = plan_download("bench/model", endpoint=endpoint)
        load_before = os.getloadavg()
        ours = _measure(lambda: download(plan, root / "raygems"))
        theirs = _measure(lambda: hf_hub_download("bench/model", "model.safetensors", endpoint=endpoint,
                                                  cache_dir=root / "hf-cache"))
    finally:
        server.terminate()
        server.wait(timeout=60)
    gigabytes = plan.total_bytes / 1e9
    result = {
        "megabytes": round(plan.total_bytes / 1e6, 1),
        "raygems_download": {"wall_seconds": round(ours[0], 2), "mb_per_s": round(plan.total_bytes / 1e6 / ours[0]),
                             "cpu_seconds_per_gb": round(ours[1] / gigabytes, 2)},
        "hf_hub_download": {"wall_seconds": round(theirs[0], 2),
                            "mb_per_s": round(plan.total_bytes / 1e6 / theirs[0]),
                            "cpu_seconds_per_gb": round(theirs[1] / gigabytes, 2)},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(result, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
