"""Scheduling disbursement of new advances. The disbursement issue fills in routing and channels."""


def advance_schedule_dispatch(*, advance_id: int) -> None:
    """Called after the advance's transaction commits. Replaced by the Celery dispatch once it exists."""
    return None
