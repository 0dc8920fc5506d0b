"""librdkafka's group consumer (Debian's python3-confluent-kafka) driven by Go tests.

usage: consume.py BOOTSTRAP GROUP TOPIC DEADLINE_SECONDS [CONFIG_JSON]

Prints one JSON object per line as things happen: {"event": "assign",
"partitions": [...]}, {"event": "revoke"}, {"event": "msg", "partition": p,
"value": v}, {"event": "error", "error": name}; it stops at a record whose
value is "stop" (or at the deadline), closes the consumer and prints
{"event": "closed", "seconds": how long close() took}.
"""
import json
import sys
import time

from confluent_kafka import Consumer


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    bootstrap, group, topic, deadline = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    conf = {"bootstrap.servers": bootstrap, "broker.address.family": "v4", "group.id": group,
            "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500, "enable.auto.commit": True, "auto.commit.interval.ms": 200}
    if len(sys.argv) > 5:
        conf.update(json.loads(sys.argv[5]))
    c = Consumer(conf)
    c.subscribe([topic],
                on_assign=lambda _c, ps: emit(event="assign", partitions=sorted(p.partition for p in ps)),
                on_revoke=lambda _c, ps: emit(event="revoke"))
    end = time.time() + deadline
    while time.time() < end:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            emit(event="error", error=m.error().name())
            continue
        v = m.value().decode()
        emit(event="msg", partition=m.partition(), value=v)
        if v == "stop":
            break
    start = time.time()
    c.close()
    emit(event="closed", seconds=time.time() - start)


if __name__ == "__main__":
    main()
