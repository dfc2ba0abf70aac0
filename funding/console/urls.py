from django.urls import path

from funding.console import views

app_name = "console"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("reports/", views.reports_index, name="reports"),
    path("reports/daily-position/", views.report_daily_position, name="report_daily_position"),
    path("reports/trial-balance/", views.report_trial_balance, name="report_trial_balance"),
    path("reports/account-balances/", views.report_account_balances, name="report_account_balances"),
    path("reports/channels/", views.report_channels, name="report_channels"),
    path("audit/", views.audit, name="audit"),
    path("queues/", views.work_queues, name="queues"),
    path("sign-ins/", views.sign_ins, name="sign_ins"),
    path("calendar/", views.calendar, name="calendar"),
]
