"""`manage.py audit verify [--org ID]`, `manage.py audit seal` and `manage.py audit prune`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit import services


class Command(BaseCommand):
    help = "Verify the audit log's hash chains, or prune entries past their retention."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="command", required=True)
        verify = sub.add_parser(
            "verify", help="recompute every chain; report the first broken link"
        )
        verify.add_argument("--org", default="", help="only this organization's chain")
        verify.add_argument("--platform", action="store_true", help="only the platform chain")
        sub.add_parser("prune", help="delete entries older than AUDIT_RETENTION_DAYS")
        sub.add_parser("seal", help="seal every committed entry still waiting for its sealer")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["command"] == "prune":
            deleted = services.audit_prune()
            self.stdout.write(f"pruned {deleted} audit entries")
            return
        if options["command"] == "seal":
            self.stdout.write(f"sealed {services.audit_seal_pending()} audit entries")
            return
        if options["org"] or options["platform"]:
            reports = services.audit_verify(
                organization_id=options["org"] or None, platform_only=options["platform"]
            )
        else:
            # A full check is recorded, as the schedule's is (the metric shows the newest).
            reports = services.audit_verify_record()
        broken = 0
        for report in reports:
            tail = ""
            if report.unsealed:
                since = report.unsealed_since.isoformat() if report.unsealed_since else "-"
                tail = f", {report.unsealed} unsealed since {since}"
            if report.broken is None:
                self.stdout.write(f"ok      {report.chain} ({report.entries} entries{tail})")
            else:
                broken += 1
                link = report.broken
                place = "-" if link.seq is None else link.seq
                self.stdout.write(
                    f"BROKEN  {report.chain} at seq {place} (entry {link.entry_id or '-'}): "
                    f"{link.reason}{tail}"
                )
        if broken:
            raise CommandError(f"{broken} audit chain(s) broken")
        self.stdout.write(f"all {len(reports)} audit chain(s) verified")
