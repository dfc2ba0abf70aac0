"""Settlement defines funding's channel capacity view over its channels (funding 0012 created it empty).

advance_reserve() reads it to refuse, at request time, a payout no channel can pay on the current business
date (contract 1.7, `outside_channel_hours`): funding never reads settlement's tables, settlement says what
its channels can do in the shape funding asks for. Bank codes are the channel's comma-separated list as an
array (empty: any bank); service hours are Shanghai time (NULL: 7x24).
"""

from django.db import migrations

CAPACITY_VIEW = """
CREATE OR REPLACE VIEW funding_channel_capacity_view AS
SELECT c.code::varchar(32) AS channel, c.enabled, c.min_amount::numeric AS min_amount,
       c.max_amount::numeric AS max_amount,
       array_remove(string_to_array(replace(c.bank_codes, ' ', ''), ','), '')::text[] AS bank_codes,
       c.service_start, c.service_end
  FROM settlement_channel c;
"""

CAPACITY_VIEW_EMPTY = """
CREATE OR REPLACE VIEW funding_channel_capacity_view AS
SELECT NULL::varchar(32) AS channel, NULL::boolean AS enabled, NULL::numeric AS min_amount,
       NULL::numeric AS max_amount, NULL::text[] AS bank_codes, NULL::time AS service_start,
       NULL::time AS service_end
 WHERE false;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("funding", "0012_line_governance"),
        ("settlement", "0007_hand_over_to_funding"),
    ]

    operations = [migrations.RunSQL(CAPACITY_VIEW, reverse_sql=CAPACITY_VIEW_EMPTY)]
