from django.core.management.base import BaseCommand, CommandError

from wallets.selectors import balances_out_of_ledger, intervals_out_of_ledger


class Command(BaseCommand):
    help = "Check that every balance (and periodic interval) equals the sum of its ledger entries."

    def handle(self, *args, **options):
        problems = 0
        for balance in balances_out_of_ledger():
            problems += 1
            self.stderr.write(
                f"Balance {balance.pk} ({balance}, resource {balance.resource_id}): "
                f"amount {balance.amount} but ledger sums to {balance.ledger_total}"
            )
        for interval in intervals_out_of_ledger():
            problems += 1
            self.stderr.write(
                f"Interval {interval.pk} of balance {interval.balance_id} ({interval}): "
                f"amount {interval.amount} but ledger sums to {interval.ledger_total}"
            )
        if problems:
            raise CommandError(f"{problems} balance(s) differ from their ledger.")
        self.stdout.write(self.style.SUCCESS("Ledger OK: every balance equals its entries."))
