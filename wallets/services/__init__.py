"""Every write to balances, one module per concern; import from the module that owns a function.

- `ledger`: `balance_apply`, the only place a balance amount changes, and the locking order.
- `validity`: start and end time (rules S1–S7, E1–E9).
- `topup`: top-ups (T1–T7), by card serial or by an external voucher reference.
- `intervals`: a periodic balance's intervals, made from the template's period
  (`balance_intervals_ensure`).
- `adjust`: credits and debits by an operator or partner, with their idempotency.
- `reversal`: undoing a top-up or redemption with a compensating entry.
- `checks`: the input rules several of them share (amount precision and size, reason text).
"""
