# One advance's own pending payouts, oldest first (issue 15): the first statement of every dispatch task reads
# them. Without this index the prepared claim's generic plan could walk the whole queue's partial index
# (funding_payout_pending) with the advance as a filter, O(queue) for every task.
#
# Not atomic, and built CONCURRENTLY: a plain CREATE INDEX would block payout writes (new advances, dispatch)
# while it scans the table.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('funding', '0022_own_funds_available_plpgsql'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='payout',
            index=models.Index(condition=models.Q(('status', 'pending')), fields=['advance_id', 'id'], name='funding_payout_pending_own'),
        ),
    ]
