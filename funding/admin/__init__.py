"""Staff admin. Every change goes through funding.services (four eyes, audit, events); FSM fields and
counters are read-only, and no admin page changes a state field or a counter directly."""

from funding.admin import advances, calendar, companies, statements  # noqa: F401 - registers
