#!/usr/bin/env bash
# Apache Kafka for the e2e tests, from Maven Central (no Docker): a single-node KRaft broker on 127.0.0.1.
#
#   kafka.sh fetch                      download the broker's jars once (cached in $FRAUDPIPE_KAFKA_HOME)
#   kafka.sh start DIR PORT CTRL_PORT   format DIR and start a broker on PORT (controller on CTRL_PORT); prints its pid
#   kafka.sh stop DIR                   stop the broker started in DIR
#   kafka.sh produce BROKERS TOPIC      send "key|value" lines from stdin with the Java client (any broker)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
home="${FRAUDPIPE_KAFKA_HOME:-$HOME/.cache/fraudpipe/kafka-$version}"

fetch() {
  if [ -f "$home/lib/kafka_2.13-$version.jar" ] && [ -f "$home/lib/kafka-tools-$version.jar" ]; then
    return
  fi
  mkdir -p "$home"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$home/lib.tmp" >&2
  rm -rf "$home/lib" && mv "$home/lib.tmp" "$home/lib"
}

start() {
  local dir="$1" port="$2" ctrl="$3"
  fetch
  mkdir -p "$dir"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctrl
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=6
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  local java=(java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dkafka.logs.dir="$dir"
    -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$home/lib/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local id
    id="$(python3 -c 'import uuid,base64;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
    "${java[@]}" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" > "$dir/format.log" 2>&1 ||
      { cat "$dir/format.log" >&2; exit 1; }
  fi
  nohup "${java[@]}" kafka.Kafka "$dir/server.properties" > "$dir/stdout.log" 2>&1 &
  echo $! > "$dir/pid"
  for _ in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      cat "$dir/pid"
      return
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/stdout.log" >&2; tail -c 4096 "$dir/server.log" >&2 2>/dev/null; exit 1; }
    sleep 0.5
  done
  echo "kafka did not listen on $port within 60s" >&2
  exit 1
}

stop() {
  local dir="$1"
  [ -f "$dir/pid" ] || return 0
  local pid; pid="$(cat "$dir/pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$dir/pid"; return; }; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/pid"
}

produce() {
  fetch
  java -Xmx256m -Dlog4j2.configurationFile="$here/log4j2.properties" -Dkafka.logs.dir="${TMPDIR:-/tmp}" -cp "$home/lib/*" \
    org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$1" --topic "$2" \
    --property parse.key=true --property key.separator='|' --producer-property acks=all
}

consume() {
  fetch
  java -Xmx256m -Dlog4j2.configurationFile="$here/log4j2.properties" -Dkafka.logs.dir="${TMPDIR:-/tmp}" -cp "$home/lib/*" \
    org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$1" --topic "$2" --from-beginning --max-messages "$3"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  fetch) fetch ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  produce) produce "$@" ;;
  consume) consume "$@" ;;
  *) echo "usage: $0 fetch | start DIR PORT CTRL_PORT | stop DIR | produce BROKERS TOPIC | consume BROKERS TOPIC N" >&2; exit 2 ;;
esac
