"""``fedsim info``: versions, torch device, assets found, sample data."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("info", help="show versions, torch device and the assets found")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from fedsim_app.info import system_info

    info = system_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("FedSim installation")
    for name, version in info["versions"].items():
        print(f"  {name:<14} {version or 'not installed'}")
    print(f"  torch device   {info['torch_device']} ({info['torch_threads']} threads)")
    print(f"assets ({info['assets_dir']}):")
    for rel, size in info["assets"] or [("none", 0)]:
        print(f"  {rel:<40} {size / 1024:8.1f} KiB")
    print(f"cache: {info['cache_dir']}")
    samples = info["sample_data"]
    listed = ", ".join(samples) if samples else "none yet (made on first use)"
    print(f"sample data cached: {listed}")
    return 0
