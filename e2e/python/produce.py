"""Send "key|value" lines from stdin to a topic with kafka-python's default partitioner (murmur2 of the key)."""
import sys

from kafka import KafkaProducer


def main(brokers: str, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=brokers.split(","), acks="all")
    sent = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        key, _, value = line.partition("|")
        producer.send(topic, key=key.encode(), value=value.encode()).get(timeout=30)
        sent += 1
    producer.flush()
    producer.close()
    print(f"sent {sent}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
