"""librdkafka's producer (Debian's python3-confluent-kafka) driven by Go tests.

usage: produce.py BOOTSTRAP TOPIC JSON_MESSAGES, where each message is
{"key": str or null, "value": str}; prints the delivery outcome of each, in order:
"" or the Kafka error name.
"""
import json
import sys

from confluent_kafka import Producer


def main():
    bootstrap, topic, messages = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                  "acks": "all", "linger.ms": 0, "retries": 0, "message.timeout.ms": 30000})
    out = [None] * len(messages)

    def report(i):
        def cb(err, msg):
            out[i] = "" if err is None else err.name()
        return cb

    for i, m in enumerate(messages):
        key = m["key"].encode() if m["key"] is not None else None
        p.produce(topic, value=m["value"].encode(), key=key, partition=0, on_delivery=report(i))
        p.flush(30)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
