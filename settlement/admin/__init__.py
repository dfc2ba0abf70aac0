"""Staff screens for settlement: channels, payouts and attempts, manual reviews (four eyes), channel statements
and reconciliation, nightly job runs, repayments and margin set-offs (four eyes). Writes go through the
services; the admin stays thin."""

from settlement.admin import channels, margin, nightly, payouts, reconciliation, simulator  # noqa: F401 - registers
