"""What funding tells the rest of the engine without knowing who listens (settlement connects in its ready()).

Signals are sent inside the sender's database transaction: a receiver that starts work elsewhere (a task, a
channel call) must defer it with `transaction.on_commit`.
"""

from django.dispatch import Signal

# A new advance was reserved: its payouts are pending and its holds taken. kwargs: advance.
advance_reserved = Signal()

# A bank statement file was imported (each line committed). kwargs: statement (BankStatementImport),
# value_dates (the value dates of the lines it imported). Sent outside any transaction; a receiver may return
# a one-line summary of what it did, which the import reports.
bank_statement_imported = Signal()
