import re

import pytest
from django.urls import reverse


@pytest.mark.django_db
def test_language_switch_shows_the_console_in_chinese_and_back(business_day, client, user_in_role):
    client.force_login(user_in_role("finance"))
    dashboard = reverse("console:dashboard")
    english = client.get(dashboard).content.decode()
    assert "Credit exposure per company" in english and 'action="/i18n/setlang/"' in english

    switched = client.post(reverse("set_language"), {"language": "zh-hans", "next": dashboard})
    assert switched.status_code == 302 and switched["Location"] == dashboard
    chinese = client.get(dashboard).content.decode()
    assert "各公司授信敞口" in chinese and "仪表盘" in chinese and "营业日" in chinese
    assert "Credit exposure per company" not in chinese
    report = client.get(reverse("console:report_daily_position")).content.decode()
    assert "期初未偿余额" in report

    client.post(reverse("set_language"), {"language": "en", "next": dashboard})
    assert "Credit exposure per company" in client.get(dashboard).content.decode()


@pytest.mark.django_db
def test_csv_headers_stay_stable_in_chinese(business_day, client, user_in_role):
    client.force_login(user_in_role("finance"))
    client.post(reverse("set_language"), {"language": "zh-hans"})
    csv_text = client.get(reverse("console:report_trial_balance"), {"format": "csv"}).content.decode("utf-8-sig")
    assert csv_text.splitlines()[0] == "account,name,type,currency,debit,credit"


def test_every_console_label_has_a_chinese_translation():
    from pathlib import Path

    po = Path(__file__).resolve().parents[3] / "funding/console/locale/zh_Hans/LC_MESSAGES/django.po"
    text = po.read_text(encoding="utf-8")
    assert "#, fuzzy" not in text
    entries = text.split('msgid "')[2:]  # the first is the header
    assert entries and all('msgstr ""' not in entry for entry in entries)


@pytest.mark.django_db
def test_work_queues_and_sign_ins_in_chinese(business_day, client, user_in_role):
    client.force_login(user_in_role("auditor"))
    client.post(reverse("set_language"), {"language": "zh-hans"})
    queues = client.get(reverse("console:queues")).content.decode()
    assert "工作队列" in queues and "人工复核的代付" in queues and "Work queues" not in queues
    sign_ins = client.get(reverse("console:sign_ins")).content.decode()
    assert "员工登录记录" in sign_ins and "登录失败（30 天）" in sign_ins and "Last login" not in sign_ins


def test_every_admin_label_action_and_model_has_a_chinese_translation():
    from django.utils.translation import gettext, override

    from funding.console.admin_labels import admin_labels

    labels = admin_labels()
    assert {"advances", "credit line", "Freeze now", "Partially disbursed", "value date"} <= set(labels)
    with override("zh-hans"):
        untranslated = [label for label in labels if gettext(label) == label]
    assert untranslated == []


@pytest.mark.django_db
def test_admin_screens_in_chinese(business_day, client, user_in_role):
    from tests.factories import company_with_line

    company_with_line()
    client.force_login(user_in_role("credit_approver"))
    client.post(reverse("set_language"), {"language": "zh-hans"})
    index = client.get(reverse("admin:index")).content.decode()
    assert "授信额度" in index and "垫资" in index and "Credit lines" not in index
    lines = client.get(reverse("admin:funding_creditline_changelist")).content.decode()
    assert "有效额度" in lines and "立即冻结" in lines and "Freeze now" not in lines
    # The status column: its header and the line's status choice, both in Chinese.
    assert "状态" in lines
    assert re.findall(r'field-status[^>]*>(.*?)</td>', lines) == ["启用"] and ">Active<" not in lines
