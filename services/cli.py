"""`fengqiao <command>`: one entry point that dispatches to each service's CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch `fengqiao triage …` (more subcommands are added here)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: fengqiao triage [FILE.jsonl] [--rules RULES.yaml]\n"
            "       fengqiao token STAFF_ID [--hours H]   (a token for stored staff, ≤ 1 h)\n"
            "       fengqiao token --admin [--hours H]     (an admin token, ≤ 1 h)\n"
            "       fengqiao keys                          (a new Ed25519 token-signing key pair)\n"
            "       fengqiao pii rekey [SERVICE …]         (re-encrypt with the current PII key)\n"
            "       fengqiao migrate [SERVICE ...]         (databases to the newest schema)\n"
            "       fengqiao admin create NAME [--id ID] [--hours H]\n"
            "                                              (first admin: stored, token printed)\n"
            "       fengqiao deadletters list [--all] [TOPIC …]\n"
            "       fengqiao deadletters redrive [--dry-run] [TOPIC …]\n"
            "                                              (dead letters: see, then send again)"
        )
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "triage":
        from services.triage.cli import main as triage_main

        return triage_main(rest)
    if command == "token":
        return _token(rest)
    if command == "pii" and rest[:1] == ["rekey"]:
        import asyncio

        from services.pii_rekey import rekey_service

        for service in rest[1:] or ["intake", "triage", "mediation", "followup"]:
            counts = asyncio.run(rekey_service(service))
            print(f"{service}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return 0
    if command == "keys":
        from shared.auth import new_signing_keys

        private, public = new_signing_keys()
        esc = "\\n"
        print("# the issuer (mediation) only:")
        print(f"MEDIATION_JWT_PRIVATE_KEY='{private.strip().replace(chr(10), esc)}'")
        print("# every service:")
        print(f"FENGQIAO_JWT_PUBLIC_KEY='{public.strip().replace(chr(10), esc)}'")
        return 0
    if command == "migrate":
        return _migrate(rest)
    if command == "admin":
        return _admin(rest)
    if command == "deadletters":
        from shared.deadletters import main as deadletters_main

        return deadletters_main(rest)
    print(f"fengqiao: unknown command {command!r}", file=sys.stderr)
    return 2


def _token(argv: list[str]) -> int:
    """Print a signed bearer token for a member of staff (admin command for the demo)."""
    import argparse
    import asyncio
    from datetime import timedelta

    from services.mediation.settings import MediationSettings
    from services.mediation.staff import issue_admin_token, issue_staff_token

    p = argparse.ArgumentParser(prog="fengqiao token")
    p.add_argument("staff_id", nargs="?")
    p.add_argument("--admin", action="store_true", help="an admin token (all channels)")
    p.add_argument("--hours", type=float, default=1.0, help="at most 1 (tokens are short-lived)")
    args = p.parse_args(argv)
    settings, ttl = MediationSettings(), timedelta(hours=min(args.hours, 1.0))
    if args.admin:
        try:
            print(issue_admin_token(settings, ttl=ttl))
        except LookupError as exc:
            print(f"fengqiao token: {exc}", file=sys.stderr)
            return 1
        return 0
    if not args.staff_id:
        p.error("give a STAFF_ID or --admin")
    try:
        print(asyncio.run(issue_staff_token(settings, args.staff_id, ttl=ttl)))
    except LookupError as exc:
        print(f"fengqiao token: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # no database yet, or another one
        print(
            f"fengqiao token: cannot read staff ({type(exc).__name__}); has `make run` "
            "seeded the demo?",
            file=sys.stderr,
        )
        return 1
    return 0


SERVICES = ("intake", "triage", "mediation", "followup")


def _migrate(argv: list[str]) -> int:
    """Migrate each service's database (the one its settings name), one after the other."""
    import argparse
    import asyncio
    import importlib

    from shared.db import make_engine, migrate
    from shared.settings import ServiceSettings

    p = argparse.ArgumentParser(prog="fengqiao migrate")
    p.add_argument("services", nargs="*", metavar="SERVICE", help=f"of {', '.join(SERVICES)}")
    args = p.parse_args(argv)
    unknown = set(args.services) - set(SERVICES)
    if unknown:
        p.error(f"unknown service(s): {', '.join(sorted(unknown))}")

    async def run(name: str) -> None:
        main = importlib.import_module(f"services.{name}.main")
        settings_cls = next(
            v
            for k, v in vars(importlib.import_module(f"services.{name}.settings")).items()
            if k.endswith("Settings")
            and k != "ServiceSettings"
            and isinstance(v, type)
            and issubclass(v, ServiceSettings)
        )
        engine = make_engine(settings_cls().database_url)
        try:
            await migrate(engine, main.MIGRATIONS)
        finally:
            await engine.dispose()

    for name in args.services or SERVICES:
        try:
            asyncio.run(run(name))
        except Exception as exc:
            print(f"fengqiao migrate: {name} failed ({type(exc).__name__})", file=sys.stderr)
            return 1
        print(f"fengqiao migrate: {name} is at the newest schema", file=sys.stderr)
    return 0


def _admin(argv: list[str]) -> int:
    """`fengqiao admin create NAME`: store an admin in mediation's database, print a token."""
    import argparse
    import asyncio
    from datetime import timedelta

    from services.mediation.settings import MediationSettings
    from services.mediation.staff import create_admin

    p = argparse.ArgumentParser(prog="fengqiao admin")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an admin and print a bearer token")
    create.add_argument("name", help="the admin's display name")
    create.add_argument("--id", dest="staff_id", default=None, help="staff id (default: made up)")
    create.add_argument("--hours", type=float, default=1.0, help="token lifetime (≤ 1 h)")
    args = p.parse_args(argv)
    settings = MediationSettings()
    try:
        staff_id, token = asyncio.run(
            create_admin(settings, args.name, args.staff_id, ttl=timedelta(hours=args.hours))
        )
    except ValueError as exc:
        print(f"fengqiao admin create: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # no database, or not migrated
        print(
            f"fengqiao admin create: cannot write staff ({type(exc).__name__}); has "
            "`fengqiao migrate` run?",
            file=sys.stderr,
        )
        return 1
    print(f"admin {staff_id} is stored; a bearer token for them:", file=sys.stderr)
    print(token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
