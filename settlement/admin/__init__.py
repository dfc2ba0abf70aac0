"""Staff screens for settlement: channels, payouts and attempts, manual reviews (four eyes), channel statements
and reconciliation, returns (four eyes), nightly job runs, repayments and margin set-offs (four eyes). Writes go
through the services; the admin stays thin."""

from settlement.admin import (  # noqa: F401 - registers
    channels,
    margin,
    nightly,
    payouts,
    reconciliation,
    returns,
    simulator,
)
