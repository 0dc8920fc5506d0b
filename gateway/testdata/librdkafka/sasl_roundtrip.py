"""Produce and consume through an authenticating `sluice gateway` with
confluent_kafka (librdkafka), SASL SCRAM-SHA-512 or PLAIN.

usage: sasl_roundtrip.py BOOTSTRAP MECHANISM USER TOPIC OTHER_TOPIC GROUP N
The password comes from $SASL_PASSWORD. Prints one JSON object: the values
consumed from TOPIC, and the error of producing to OTHER_TOPIC.
"""
import json
import os
import sys
import time

from confluent_kafka import Consumer, Producer

bootstrap, mech, user, topic, other, group, n = sys.argv[1:8]
n = int(n)
auth = {
    "bootstrap.servers": bootstrap,
    "broker.address.family": "v4",
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanisms": mech,
    "sasl.username": user,
    "sasl.password": os.environ["SASL_PASSWORD"],
}

errors = []


def report(err, _msg):
    if err is not None:
        errors.append(str(err))


p = Producer(dict(auth, **{"enable.idempotence": True}))
for i in range(n):
    p.produce(topic, value=f"{mech}-{i}".encode(), on_delivery=report)
p.flush(60)
if errors:
    print(json.dumps({"error": errors[0]}))
    sys.exit(0)

denied = []
q = Producer(dict(auth, **{"message.timeout.ms": 10000}))
q.produce(other, value=b"x", on_delivery=lambda err, _m: denied.append(str(err)))
q.flush(30)

c = Consumer(dict(auth, **{"group.id": group, "auto.offset.reset": "earliest"}))
c.subscribe([topic])
seen = set()
deadline = time.time() + 60
while time.time() < deadline and len([v for v in seen if v.startswith(mech + "-")]) < n:
    m = c.poll(1.0)
    if m is None:
        continue
    if m.error():
        print(json.dumps({"error": str(m.error())}))
        sys.exit(0)
    seen.add(m.value().decode())
c.commit(asynchronous=False)
c.close()
print(json.dumps({"consumed": sorted(seen), "denied": denied[0] if denied else ""}))
