"""Set-based SQL transitions take their source states from the django-fsm-2 transitions (issue 12 part 5)."""

import pytest
from django_fsm import FSMField, transition

from config.fsm import transition_sources
from funding.models import ADVANCE_DUE_STATES, ADVANCE_REPAYABLE_STATES, Advance, CreditLine
from funding.services.credit_lines import EXPIRABLE_LINE_STATES
from settlement.models import JobRun
from settlement.models.jobs import JOB_RUN_FAILABLE_STATES


def _declared(model, name: str) -> set[str]:
    field = next(f for f in model._meta.fields if isinstance(f, FSMField))
    return {str(t.source) for t in field.get_all_transitions(model) if t.name == name}


@pytest.mark.parametrize(
    ("constant", "model", "name", "expected"),
    [
        (ADVANCE_DUE_STATES, Advance, "mark_overdue", ["disbursed", "disbursing", "partially_disbursed"]),
        (ADVANCE_REPAYABLE_STATES, Advance, "mark_repaid", ["disbursed", "overdue", "partially_disbursed"]),
        (EXPIRABLE_LINE_STATES, CreditLine, "expire", ["active", "frozen", "pending_approval", "suspended"]),
        (JOB_RUN_FAILABLE_STATES, JobRun, "fail", ["running"]),
    ],
)
def test_sql_source_states_are_the_fsm_transitions_sources(constant, model, name, expected):
    assert [str(s) for s in constant] == expected
    assert set(expected) == _declared(model, name)


def test_a_wildcard_source_has_no_list():
    class Thing:
        state = FSMField(default="a")

        @transition(field=state, source="*", target="b")
        def anywhere(self):
            pass

    with pytest.raises(ValueError):
        transition_sources(Thing.anywhere, wildcards=False)
