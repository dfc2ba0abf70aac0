import pytest

from config.ops.celery_hooks import _publish_request_id
from config.ops.context import request_id_var
from config.ops.tasks import retention_purge_task


def test_published_tasks_carry_the_request_id():
    token = request_id_var.set("req-abcdef012345")
    try:
        headers: dict = {}
        _publish_request_id(headers=headers)
    finally:
        request_id_var.reset(token)
    assert headers == {"request_id": "req-abcdef012345"}


@pytest.mark.django_db
def test_task_log_lines_carry_a_request_id(json_logs):
    result = retention_purge_task.apply()
    assert result.successful()
    task_lines = [entry for entry in json_logs.lines() if entry["logger"] == "engine.task"]
    assert [entry["step"] for entry in task_lines] == ["start", "finish"]
    assert {entry["request_id"] for entry in task_lines} == {result.id}
    assert task_lines[1]["state"] == "SUCCESS"
    # The retention job's own line, logged inside the task, has the same id.
    job_lines = [entry for entry in json_logs.lines() if entry.get("job") == "retention_purge"]
    assert job_lines and all(entry["request_id"] == result.id for entry in job_lines)
