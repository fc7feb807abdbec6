#!/usr/bin/env bash
# Real single-node Apache Kafka (KRaft) on 127.0.0.1 for local dev/tests, without Docker.
# Usage: bash scripts/kafka.sh fetch|up|down|status|reset
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KHOME="${PARLEY_KAFKA_HOME:-$REPO/.kafka}"
# 4.x brokers need Java 17; verified 4.4.0 with OpenJDK 17 and kafkajs 2.2.4.
VERSION="${PARLEY_KAFKA_VERSION:-4.4.0}"
LOG4J_VERSION=2.25.5
SLF4J_VERSION=2.0.17
PORT="${PARLEY_KAFKA_PORT:-19092}"
CPORT="${PARLEY_KAFKA_CONTROLLER_PORT:-19093}"
LIB="$KHOME/lib" DATA="$KHOME/data" PIDFILE="$KHOME/kafka.pid" PROPS="$KHOME/server.properties"
MARKER="$LIB/.complete-$VERSION"

fetch() {
  [[ -f "$MARKER" ]] && return 0
  echo "fetching kafka_2.13:$VERSION and runtime deps into $LIB ..."
  local work="$KHOME/fetch"; rm -rf "$work" "$LIB.tmp" && mkdir -p "$work"
  # slf4j-api is pinned at depth 1 because Kafka declares 1.7.x, which cannot see the
  # slf4j2 log4j binding (the broker would then log nothing).
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion><packaging>pom</packaging>
  <groupId>parley.local</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
  <!-- pinned: Maven 3.8's default dependency plugin is years old -->
  <build><plugins><plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version></plugin></plugins></build>
</project>
EOF
  # Copy into a temp dir and rename, so an interrupted fetch never looks complete.
  # Output goes to a log (Maven's console emits stray ANSI codes even with -q) shown on failure.
  mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$LIB.tmp" >"$work/mvn.log" 2>&1 || { cat "$work/mvn.log" >&2; exit 1; }
  # Broker logs WARN+ to $DATA/server.log; the path comes from -Dkafka.logs.dir at start.
  cat >"$LIB.tmp/log4j2.xml" <<'EOF'
<Configuration status="warn">
  <Appenders><File name="file" fileName="${sys:kafka.logs.dir}/server.log"><PatternLayout pattern="[%d] %p %m (%c)%n"/></File></Appenders>
  <Loggers><Root level="warn"><AppenderRef ref="file"/></Root></Loggers>
</Configuration>
EOF
  rm -rf "$LIB" && mv "$LIB.tmp" "$LIB" && rm -rf "$work" && touch "$MARKER"
  echo "fetched $(ls "$LIB"/*.jar | wc -l) jars"
}

# Not `kill -0`: where PID 1 does not reap, a dead broker stays a zombie and looks alive forever.
alive() { local st; st="$(cat "/proc/$1/stat" 2>/dev/null)" && st="${st##*) }" && [[ "${st:0:1}" != Z ]]; }
# The pid file counts only while that pid is still our broker (guards against pid reuse).
running_pid() {
  local pid; pid="$(cat "$PIDFILE" 2>/dev/null)" && [[ -n "$pid" ]] && alive "$pid" &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' && echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# An open port is not enough: the broker must have registered, answer metadata requests and
# have a group coordinator (describeGroups creates __consumer_offsets on first use), so the
# first consumer in a test does not race "group coordinator not available".
broker_ready() {
  if [[ ! -d "$REPO/node_modules/kafkajs" ]]; then port_open "$PORT"; return; fi
  (cd "$REPO" && timeout 10 node -e '
    const { Kafka, logLevel } = require("kafkajs");
    const admin = new Kafka({ clientId: "kafka-sh", brokers: [process.argv[1]], logLevel: logLevel.NOTHING,
      retry: { retries: 0 }, connectionTimeout: 2000, requestTimeout: 3000 }).admin();
    (async () => { await admin.connect(); const c = await admin.describeCluster();
      await admin.describeGroups(["kafka-sh-probe"]); process.exit(c.brokers.length ? 0 : 1); })()
      .catch(() => process.exit(1));' "127.0.0.1:$PORT") >/dev/null 2>&1
}

write_props() {
  cat >"$PROPS" <<EOF
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$CPORT
log.dirs=$DATA/kraft
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
}

up() {
  local pid
  if pid="$(running_pid)"; then
    # A parallel `up` may have just started it: still wait, so callers can rely on readiness.
    wait_ready "$pid" && echo "kafka already running (pid $pid) at 127.0.0.1:$PORT"; return
  fi
  # Someone else on the port would make "ready" checks lie; fail loudly instead.
  if port_open "$PORT" || port_open "$CPORT"; then echo "port $PORT or $CPORT already in use" >&2; exit 1; fi
  fetch
  mkdir -p "$DATA" && write_props
  local java=(java -Xmx512m -Xms256m -Dkafka.logs.dir="$DATA" -Dlog4j2.configurationFile="$LIB/log4j2.xml" -cp "$LIB/*")
  # Format once; meta.properties marks formatted storage, so data survives down/up.
  if [[ ! -f "$DATA/kraft/meta.properties" ]]; then
    local id; id="$("${java[@]}" kafka.tools.StorageTool random-uuid)"
    "${java[@]}" kafka.tools.StorageTool format --standalone --cluster-id "$id" --config "$PROPS" >/dev/null
  fi
  # 9>&- : the broker must not inherit the lock fd, or it would hold the lock for its lifetime.
  nohup "${java[@]}" kafka.Kafka "$PROPS" >>"$DATA/stdout.log" 2>&1 </dev/null 9>&- &
  pid=$! && echo "$pid" >"$PIDFILE"
  wait_ready "$pid" && echo "kafka up at 127.0.0.1:$PORT"
}

wait_ready() {
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if ! alive "$1"; then
      echo "kafka exited during startup; see $DATA/server.log and $DATA/stdout.log:" >&2
      tail -n 20 "$DATA/server.log" "$DATA/stdout.log" >&2 2>/dev/null || true
      rm -f "$PIDFILE"; exit 1
    fi
    port_open "$PORT" && broker_ready && return 0
    sleep 0.5
  done
  echo "kafka (pid $1) not ready after 60s; see $DATA/server.log" >&2; exit 1
}

down() {
  local pid
  if ! pid="$(running_pid)"; then echo "kafka not running"; rm -f "$PIDFILE"; return 0; fi
  # SIGTERM = clean shutdown (flush + clean-shutdown marker); the next `up` takes ~3s instead
  # of ~13s after a SIGKILL. SIGKILL only as a last resort.
  kill -TERM "$pid"
  for _ in $(seq 1 60); do alive "$pid" || break; sleep 0.5; done
  if alive "$pid"; then echo "kafka did not stop in 30s; killing" >&2; kill -KILL "$pid" || true; fi
  while alive "$pid"; do sleep 0.2; done
  rm -f "$PIDFILE"
  echo "kafka stopped"
}

status() {
  local pid
  if pid="$(running_pid)"; then echo "kafka running (pid $pid) at 127.0.0.1:$PORT"
  else echo "kafka not running"; return 3; fi
}

# Serialise mutating commands (e.g. parallel test workers all calling `up`).
if [[ "${1:-}" =~ ^(fetch|up|down|reset)$ ]]; then mkdir -p "$KHOME"; exec 9>"$KHOME/.lock"; flock 9; fi
case "${1:-}" in
  fetch) fetch ;; up) up ;; down) down ;; status) status ;;
  reset) down; rm -rf "$DATA"; echo "kafka data removed" ;;
  *) echo "usage: $0 fetch|up|down|status|reset" >&2; exit 2 ;;
esac
