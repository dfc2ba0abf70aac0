import itertools
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Wednesday 2026-11-25 10:00 in Shanghai: a business day, inside every channel's service hours.
NOON = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture
def disbursement_settings(settings):
    settings.DISBURSEMENT_DISPATCH_ON_COMMIT = False
    settings.DISBURSEMENT_ROUTING_CACHE_SECONDS = 0
    return settings


@pytest.fixture
def channels(db, disbursement_settings):
    """The four simulated channels, 7x24 and with no random failures unless a test configures them."""
    from settlement.models import Channel
    from settlement.services.channels import channel_seed_simulated

    channel_seed_simulated()
    for channel in Channel.objects.all():
        channel.adapter_settings = {
            **channel.adapter_settings,
            "latency_ms": 0,
            "failure_rate": 0,
            "timeout_rate": 0,
            "late_success_rate": 0,
        }
        channel.service_start = channel.service_end = None
        channel.runs_on_non_business_days = True
        channel.save()
    return {c.code: c for c in Channel.objects.all()}


def channel_configure(channel, **adapter_settings):
    channel.adapter_settings = {**channel.adapter_settings, **adapter_settings}
    channel.save(update_fields=["adapter_settings"])


@pytest.fixture
def advance_factory(business_day, channels):
    from funding.services.advances import advance_request
    from tests.factories import company_with_line, payout_inputs

    numbers = itertools.count(1)

    def make(*amounts: str, company=None, bank_code: str = "ICBC"):
        if company is None:
            company, _ = company_with_line()
        inputs = payout_inputs(*amounts)
        if bank_code != "ICBC":
            inputs = [
                type(p)(p.external_id, p.beneficiary_name, p.account_no, bank_code, p.amount) for p in inputs
            ]
        total = sum((Decimal(a) for a in amounts), Decimal("0"))
        # A fresh external id each call: id() of a list is reused once the list is freed, which made two
        # advances of one company collide (duplicate_external_id) now and then.
        return advance_request(company=company, external_id=f"ADV-{next(numbers)}", amount=total, payouts=inputs)

    return make
