"""librdkafka's transactional producer and read_committed consumer (Debian's
python3-confluent-kafka), driven by the Go tests of test/txn.

usage:
  txn.py etl BOOTSTRAP IN OUT GROUP TXNID COUNT
      aborts one transaction of marker records ("ABORTED-<i>") written to OUT,
      then consumes COUNT records of IN with a read_committed group consumer
      and writes "out:<value>" to the same partition of OUT, one transaction
      per consumed batch, committing the consumed offsets in the transaction
      with send_offsets_to_transaction; prints {"transactions": N, "records": N}
  txn.py read BOOTSTRAP TOPIC ISOLATION UNTIL
      reads every partition of TOPIC from its start with isolation.level
      ISOLATION up to the record whose value is UNTIL; prints
      {"partitions": {"<p>": [values before UNTIL, other sentinels left out]}}
  txn.py fence BOOTSTRAP TOPIC TXNID
      a first producer begins a transaction and writes "zombie-<i>", a second
      one with the same transactional id initializes, writes "fresh-<i>" and
      commits, then the first one tries to commit; prints
      {"zombie_commit_error": name, "fatal": bool}
Errors end the script with a non-zero status and the message on stderr.
"""
import json
import sys
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaException,
                             Producer, TopicPartition)

TIMEOUT = 60


def producer(bootstrap, txn_id):
    p = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                  "transactional.id": txn_id, "transaction.timeout.ms": 60000,
                  "linger.ms": 5})
    p.init_transactions(TIMEOUT)
    return p


def produce(p, topic, partition, value):
    # A failed delivery makes commit_transaction fail, which ends the script.
    p.produce(topic, value=value.encode(), partition=partition)


def etl(bootstrap, src, dst, group, txn_id, count):
    p = producer(bootstrap, txn_id)
    # An aborted transaction with marker payloads: read_committed must never see them.
    p.begin_transaction()
    for i in range(4):
        produce(p, dst, i % 2, "ABORTED-%d" % i)
    p.flush(TIMEOUT)
    p.abort_transaction(TIMEOUT)

    c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                  "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.subscribe([src])
    done, txns = 0, 0
    deadline = time.time() + 120
    while done < count:
        if time.time() > deadline:
            raise SystemExit("etl: %d of %d records after 120 s" % (done, count))
        msgs = c.consume(num_messages=50, timeout=1)
        msgs = [m for m in msgs if m.error() is None]
        if not msgs:
            continue
        p.begin_transaction()
        for m in msgs:
            produce(p, dst, m.partition(), "out:" + m.value().decode())
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), TIMEOUT)
        p.commit_transaction(TIMEOUT)
        txns += 1
        done += len(msgs)
    c.close()
    json.dump({"transactions": txns, "records": done}, sys.stdout)


def read(bootstrap, topic, isolation, until):
    c = Consumer({"bootstrap.servers": bootstrap, "broker.address.family": "v4",
                  "group.id": "txn-read-unused", "enable.auto.commit": False,
                  "isolation.level": isolation})
    md = c.list_topics(topic, timeout=TIMEOUT)
    parts = sorted(md.topics[topic].partitions)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    got = {str(p): [] for p in parts}
    done = set()
    deadline = time.time() + 120
    while len(done) < len(parts):
        if time.time() > deadline:
            raise SystemExit("read: sentinel on %d of %d partitions after 120 s" % (len(done), len(parts)))
        m = c.poll(1)
        if m is None or m.error() is not None:
            continue
        v = m.value().decode()
        if m.partition() in done:
            continue
        if v == until:
            done.add(m.partition())
        elif not v.startswith("sentinel"):
            got[str(m.partition())].append(v)
    c.close()
    json.dump({"partitions": got}, sys.stdout)


def fence(bootstrap, topic, txn_id):
    zombie = producer(bootstrap, txn_id)
    zombie.begin_transaction()
    for i in range(5):
        produce(zombie, topic, 0, "zombie-%d" % i)
    zombie.flush(TIMEOUT)
    fresh = producer(bootstrap, txn_id)
    fresh.begin_transaction()
    for i in range(5):
        produce(fresh, topic, 0, "fresh-%d" % i)
    fresh.commit_transaction(TIMEOUT)
    out = {"zombie_commit_error": "", "fatal": False}
    try:
        zombie.commit_transaction(TIMEOUT)
    except KafkaException as e:
        err = e.args[0]
        out = {"zombie_commit_error": err.name(), "fatal": err.fatal()}
    json.dump(out, sys.stdout)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "etl":
        etl(args[0], args[1], args[2], args[3], args[4], int(args[5]))
    elif cmd == "read":
        read(*args)
    elif cmd == "fence":
        fence(*args)
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
