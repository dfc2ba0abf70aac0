"""The simulated channels' bank side (what the simulated banks booked): shown on local runs only.

A production console has no simulated bank; staff must not mistake its table for a real channel's records.
"""

from django.conf import settings
from django.contrib import admin

from config.admin import ReadOnlyAdmin
from settlement.models import SimulatedChannelTransfer


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


if settings.LOCAL_RUN:
    admin.site.register(SimulatedChannelTransfer, SimulatedChannelTransferAdmin)
