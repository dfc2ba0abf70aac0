"""Staff screens for settlement: channels, payouts and attempts, manual reviews (four eyes), channel statements
and reconciliation, nightly job runs and repayments. Writes go through the services; the admin stays thin."""

from settlement.admin import channels, nightly, payouts, reconciliation, simulator  # noqa: F401 - registers
