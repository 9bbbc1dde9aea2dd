#!/usr/bin/env bash
# Fetch, start and stop a real single-node Apache Kafka broker (KRaft mode,
# combined broker + controller) for local development and tests.
# No Docker: the broker jars come from Maven Central via infra/kafka/pom.xml.
#
# Usage: scripts/kafka.sh fetch|start|stop|status|reset
#
# Environment:
#   KAFKA_PORT             client listener port        (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port       (default 9093)
#   KAFKA_HEAP_OPTS        JVM heap flags              (default "-Xms128m -Xmx512m")
#   KAFKA_START_TIMEOUT    seconds to wait for ready   (default 90)
#   KAFKA_RUN_DIR          config, logs and data       (default .run/kafka; a second broker
#                          from the same clone, e.g. one a test stops, needs its own)
#   JAVA_HOME              Java 17+ to use (default: `java` on PATH)
#
# Files (relative to the repo root, both git-ignored):
#   .cache/kafka/libs/     broker jars (+ .fetched marker), .cache/m2 Maven repo
#   .run/kafka/            server.properties, log4j2.properties, broker.log,
#                          broker.out (JVM stdout/stderr), broker.pid, data/
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$ROOT/infra/kafka/pom.xml"
CACHE_DIR="$ROOT/.cache/kafka"
LIBS="$CACHE_DIR/libs"
MARKER="$LIBS/.fetched"
M2_REPO="$ROOT/.cache/m2"
RUN_DIR="${KAFKA_RUN_DIR:-$ROOT/.run/kafka}"  # a second broker (make chaos) gets its own
DATA_DIR="$RUN_DIR/data"
PROPS="$RUN_DIR/server.properties"
LOG4J_CONF="$RUN_DIR/log4j2.properties"
BROKER_LOG="$RUN_DIR/broker.log"
BROKER_OUT="$RUN_DIR/broker.out"
PID_FILE="$RUN_DIR/broker.pid"
LOCK_FILE="$RUN_DIR/.lock"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HOST=127.0.0.1

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA="java"
fi

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

kafka_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}

# What the marker must contain for the cached jars to count as complete.
wanted_marker() {
  echo "kafka=$(kafka_version) pom=$(sha256sum "$POM" | cut -c1-16)"
}

libs_ok() {
  [[ -f "$MARKER" ]] && [[ "$(cat "$MARKER")" == "$(wanted_marker)" ]] \
    && [[ -f "$LIBS/kafka_2.13-$(kafka_version).jar" ]]
}

cmd_fetch() {
  if libs_ok; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to download the Kafka jars)"
  local version tmp
  version="$(kafka_version)"
  [[ -n "$version" ]] || die "cannot read <kafka.version> from $POM"
  log "downloading Apache Kafka $version broker jars from Maven Central into .cache/kafka/libs ..."
  mkdir -p "$CACHE_DIR" "$M2_REPO"
  tmp="$(mktemp -d "$CACHE_DIR/libs.tmp.XXXXXX")"
  if ! mvn -B -q -ntp -Dstyle.color=never -f "$POM" -Dmaven.repo.local="$M2_REPO" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
      >"$CACHE_DIR/mvn.log" 2>&1; then
    tail -n 40 "$CACHE_DIR/mvn.log" >&2
    rm -rf "$tmp"
    die "maven download failed (full output in .cache/kafka/mvn.log)"
  fi
  [[ -f "$tmp/kafka_2.13-$version.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$version.jar missing after download"; }
  wanted_marker >"$tmp/.fetched"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  log "fetched $(find "$LIBS" -name "*.jar" | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) for Kafka $version"
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# Is $1 a live process that is *our* broker (guards against PID reuse)?
is_our_broker() {
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$PROPS"
}

# Prints the PID of our running broker, or nothing.
broker_pid() {
  local pid=""
  if [[ -f "$PID_FILE" ]]; then
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    if is_our_broker "$pid"; then
      echo "$pid"
      return 0
    fi
  fi
  # Pid file lost or stale: look for a broker started with our server.properties.
  local p
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    if is_our_broker "$p"; then
      echo "$p"
      return 0
    fi
  done
  return 0
}

# Client port of the running broker, from the config it was started with.
running_port() {
  sed -n 's|^advertised.listeners=PLAINTEXT://.*:\([0-9][0-9]*\)$|\1|p' "$PROPS" 2>/dev/null | head -n1
}

# Our broker is running: talk about (and wait on) the port it really uses.
use_running_port() {
  local p
  p="$(running_port)"
  if [[ -n "$p" && "$p" != "$KAFKA_PORT" ]]; then
    log "note: the running broker listens on port $p, not $KAFKA_PORT (stop it to change ports)"
  fi
  KAFKA_PORT="${p:-$KAFKA_PORT}"
}

write_configs() {
  mkdir -p "$RUN_DIR" "$DATA_DIR"
  cat >"$PROPS" <<EOF
# Generated by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
  cat >"$LOG4J_CONF" <<EOF
# Generated by scripts/kafka.sh: broker logs go to $BROKER_LOG only.
status = warn
name = fengqiao-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $BROKER_LOG
appender.file.filePattern = $BROKER_LOG.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
}

format_storage_once() {
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    return 0
  fi
  local cluster_id
  cluster_id="$("$JAVA" -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J_CONF" \
    kafka.tools.StorageTool random-uuid)"
  log "formatting KRaft storage in $DATA_DIR (cluster id $cluster_id)"
  "$JAVA" -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J_CONF" \
    kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" -c "$PROPS" \
    >>"$BROKER_OUT" 2>&1 || { tail -n 20 "$BROKER_OUT" >&2; die "storage format failed"; }
}

# Really ready = the broker logged that it started AND a Kafka client sees the
# broker registered in cluster metadata (a port-open check alone is not enough).
client_ready() {
  local py=""
  if [[ -x "$ROOT/.venv/bin/python" ]]; then
    py="$ROOT/.venv/bin/python"
  elif command -v python3 >/dev/null; then
    py="python3"
  fi
  if [[ -z "$py" ]] || ! "$py" -c "import aiokafka" 2>/dev/null; then
    return 0 # no client available: rely on the log line + open port
  fi
  "$py" - "$HOST:$KAFKA_PORT" <<'PY' >/dev/null 2>&1
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient

async def main() -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        info = await asyncio.wait_for(admin.describe_cluster(), 10)
        return 0 if info.get("brokers") else 1
    except Exception:
        return 1
    finally:
        try:
            await admin.close()
        except Exception:
            pass

sys.exit(asyncio.run(main()))
PY
}

wait_ready() {
  local pid="$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker process $pid exited during startup; last lines of $RUN_DIR/broker.log / broker.out:"
      tail -n 40 "$BROKER_LOG" >&2 2>/dev/null || true
      tail -n 20 "$BROKER_OUT" >&2 2>/dev/null || true
      rm -f "$PID_FILE"
      exit 1
    fi
    if grep -qs "Kafka Server started" "$BROKER_LOG" "$BROKER_LOG".* && port_open "$KAFKA_PORT" && client_ready; then
      return 0
    fi
    sleep 0.5
  done
  log "broker not ready after ${KAFKA_START_TIMEOUT}s; last lines of $BROKER_LOG:"
  tail -n 40 "$BROKER_LOG" >&2 2>/dev/null || true
  tail -n 20 "$BROKER_OUT" >&2 2>/dev/null || true
  exit 1
}

cmd_start() {
  mkdir -p "$RUN_DIR"
  exec 9>"$LOCK_FILE"
  flock -w 180 9 || die "timed out waiting for another kafka.sh on $LOCK_FILE"

  local pid
  pid="$(broker_pid)"
  if [[ -n "$pid" ]]; then
    echo "$pid" >"$PID_FILE"
    use_running_port
    wait_ready "$pid"
    echo "kafka: already running (pid $pid) on $HOST:$KAFKA_PORT"
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    echo "kafka: something already answers on $HOST:$KAFKA_PORT (not started by this script); using it"
    return 0
  fi
  if port_open "$KAFKA_CONTROLLER_PORT"; then
    die "port $KAFKA_CONTROLLER_PORT (controller) is taken by another process; set KAFKA_CONTROLLER_PORT"
  fi

  cmd_fetch
  write_configs
  format_storage_once

  # Logs of this run only (wait_ready looks for the "started" line in them).
  rm -f "$BROKER_LOG".*
  : >"$BROKER_LOG"
  local t0=$SECONDS
  # 9>&-: the broker must not inherit (and so keep holding) the start lock.
  # setsid: own session, so the broker outlives the caller and does not hold
  # the caller's terminal/pipes (stdout/stderr go to broker.out).
  # shellcheck disable=SC2086
  setsid "$JAVA" $KAFKA_HEAP_OPTS \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$RUN_DIR" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" \
    </dev/null >>"$BROKER_OUT" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  log "started broker pid $pid, waiting for it to be ready on $HOST:$KAFKA_PORT ..."
  wait_ready "$pid"
  echo "kafka: ready on $HOST:$KAFKA_PORT (pid $pid, $((SECONDS - t0))s; log $BROKER_LOG)"
}

cmd_stop() {
  mkdir -p "$RUN_DIR"
  local pid
  pid="$(broker_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PID_FILE"
    echo "kafka: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "broker pid $pid did not stop within 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
  fi
  rm -f "$PID_FILE"
  echo "kafka: stopped (pid $pid)"
}

cmd_status() {
  local pid
  pid="$(broker_pid)"
  if [[ -n "$pid" ]]; then
    KAFKA_PORT="$(running_port)"
    echo "kafka: running (pid $pid) on $HOST:${KAFKA_PORT:-?}"
    return 0
  fi
  echo "kafka: stopped"
  return 1
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA_DIR"
  echo "kafka: data deleted ($DATA_DIR)"
}

case "${1:-}" in
  fetch) cmd_fetch; echo "kafka: jars present in .cache/kafka/libs (Kafka $(kafka_version))" ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  *)
    echo "usage: $0 fetch|start|stop|status|reset" >&2
    exit 2
    ;;
esac
