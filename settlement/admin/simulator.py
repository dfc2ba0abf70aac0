"""The simulated channels' bank side (what the simulated banks booked)."""


from django.contrib import admin

from config.admin import ReadOnlyAdmin
from settlement.models import SimulatedChannelTransfer


@admin.register(SimulatedChannelTransfer)
class SimulatedChannelTransferAdmin(ReadOnlyAdmin):
    list_display = [
        "serial",
        "channel_code",
        "amount",
        "status",
        "channel_code_result",
        "value_date",
        "received_at",
    ]
    list_filter = ["channel_code", "status", "value_date"]
    search_fields = ["serial"]
