"""What the tests see of the Redis broker: the commands sent, the messages on a queue."""

import base64
import json

import redis


def redis_commands_recorded(monkeypatch) -> list[str]:
    """The names of the Redis commands sent from now on, in order (the real client still runs them); a pipeline
    is one entry, "PIPELINE" and its commands."""
    sent: list[str] = []
    execute = redis.Redis.execute_command

    def recording(self, *args, **options):
        sent.append(str(args[0]).upper())
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", recording)
    pipeline_execute = redis.client.Pipeline.execute

    def recording_pipeline(self, *args, **kwargs):
        sent.append("PIPELINE " + " ".join(str(command[0][0]) for command in self.command_stack))
        return pipeline_execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", recording_pipeline)
    return sent


def queue_messages(client, queue: str, marker: str | None = None) -> list[tuple[str, list, dict]]:
    """(task name, args, delivery_info) of the messages on `queue`, oldest first, removed from the queue: those
    whose args hold `marker`, or all of them."""
    out = []
    for raw in reversed(client.lrange(queue, 0, -1)):  # LPUSH: the oldest is last
        message = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        if marker is None or marker in json.dumps(args):
            out.append((message["headers"]["task"], args, message["properties"]["delivery_info"]))
            client.lrem(queue, 1, raw)
    return out
