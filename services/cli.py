"""`fengqiao <command>`: one entry point that dispatches to each service's CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch `fengqiao triage …` (more subcommands are added here)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: fengqiao triage [FILE.jsonl] [--rules RULES.yaml]")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "triage":
        from services.triage.cli import main as triage_main

        return triage_main(rest)
    print(f"fengqiao: unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
