"""simulate_day: a short day runs end to end, moves money only through balanced journals, freezes the weak
company, pushes the due date past the added holiday, and leaves no line over a limit it was granted at."""

from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import F

from funding.models import Advance, CalendarDay, CreditLine, Payout
from ledger.selectors import account_totals_drift, trial_balance

# transaction=True: the disbursement services refuse to call a channel inside a transaction.
pytestmark = pytest.mark.django_db(transaction=True)


def test_simulate_day_short_run(settings):
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False
    settings.WEBHOOK_ENQUEUE_ON_COMMIT = False
    out = StringIO()
    call_command("simulate_day", "--advances", "60", "--seed", "7", stdout=out)
    text = out.getvalue()
    assert "== report" in text
    lines = CreditLine.objects.filter(company__code__startswith="SIM-")
    assert lines.count() == 5
    assert lines.get(company__code__endswith="-WEAK").status == "frozen"
    # End of day recomputes the limits from flow and margin: a line may end above a lowered limit (that blocks
    # new advances and touches nothing drawn), but only when a factor cut the limit below its approved value.
    for line in lines.filter(reserved__gt=F("effective_limit") - F("outstanding")):
        assert line.effective_limit < line.approved_limit and line.available == 0, line.limit_factors
    holiday = CalendarDay.objects.get(name="simulate_day extra holiday")
    assert not holiday.is_business_day
    advances = Advance.objects.all()
    assert advances.exists() and all(a.due_date > holiday.date for a in advances)
    assert not Payout.objects.exclude(
        status__in=["succeeded", "failed", "cancelled", "manual_review"]
    ).exists()
    assert trial_balance() == {"CNY": Decimal("0.00")}
    assert account_totals_drift() == []
    assert date.fromisoformat(text.split("business date ")[1][:10]) == advances.first().business_date
