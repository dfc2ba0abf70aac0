"""Staff screens for settlement: channels, payouts and attempts, manual reviews (four eyes), channel statements
and reconciliation, returns (four eyes), nightly job runs and repayments. Writes go through the services; the
admin stays thin."""

from settlement.admin import channels, nightly, payouts, reconciliation, returns, simulator  # noqa: F401 - registers
