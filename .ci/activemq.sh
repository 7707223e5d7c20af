#!/usr/bin/env bash
# ActiveMQ (Debian's `activemq` package) for hepcat's tests: STOMP on 127.0.0.1:61613,
# OpenWire on 127.0.0.1:61616, KahaDB persistence. No systemd needed.
#   bash .ci/activemq.sh start|stop|restart|status
# The broker runs as Debian instance "hepcat" (/etc/activemq/instances-available/hepcat,
# data in /var/lib/activemq/hepcat, log in /var/log/activemq/hepcat.log), started with
# Debian's launcher /usr/bin/activemq, so `/etc/init.d/activemq start` starts the same.
set -euo pipefail

INSTANCE=hepcat
STOMP_HOST=127.0.0.1 STOMP_PORT=61613
CONF=/etc/activemq/instances-available/$INSTANCE
BASE=/var/lib/activemq/$INSTANCE
PIDFILE=/run/activemq/$INSTANCE.pid
LOG=/var/log/activemq/$INSTANCE.log
START_TIMEOUT=${ACTIVEMQ_START_TIMEOUT:-120}
STOP_TIMEOUT=${ACTIVEMQ_STOP_TIMEOUT:-30}

say() { echo "activemq: $*"; }
die() { echo "activemq: ERROR: $*" >&2; [ -f "$LOG" ] && tail -n 30 "$LOG" >&2; exit 1; }

write_config() {  # (re)write the instance on every start so it follows this file
  [ -x /usr/bin/activemq ] || die "Debian package 'activemq' is not installed (apt-get install activemq)"
  install -d "$CONF"
  install -d -o activemq -g activemq "$BASE" "$BASE/data" "$BASE/tmp" /run/activemq /var/log/activemq
  touch "$LOG" && chown activemq:activemq "$LOG"  # the broker (user activemq) appends to it
  # Debian's broker logs through log4j 1.2 (its log4j2.properties is never read).
  cat >"$CONF/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, out
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=%d{ISO8601} %-5p %c{1} - %m%n
EOF
  cat >"$CONF/activemq.xml" <<'XML'
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <bean class="org.springframework.beans.factory.config.PropertyPlaceholderConfigurer"/>
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="hepcat"
          useJmx="false" persistent="true" dataDirectory="${activemq.base}/data">
    <persistenceAdapter><kahaDB directory="${activemq.base}/data/kahadb"/></persistenceAdapter>
    <systemUsage><systemUsage>
      <memoryUsage><memoryUsage limit="128 mb"/></memoryUsage>
      <storeUsage><storeUsage limit="2 gb"/></storeUsage>
      <tempUsage><tempUsage limit="1 gb"/></tempUsage>
    </systemUsage></systemUsage>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://127.0.0.1:61616"/>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:61613"/>
    </transportConnectors>
  </broker>
</beans>
XML
  # Per-instance options: read by /usr/bin/activemq instead of /usr/share/activemq/activemq-options.
  local jhome; jhome=$(ls -d /usr/lib/jvm/java-17-openjdk-* 2>/dev/null | head -n1 || true)
  cat >"$CONF/options" <<EOF
ACTIVEMQ_BASE=$BASE
ACTIVEMQ_OPTS="-Xms128M -Xmx512M -Dorg.apache.activemq.UseDedicatedTaskRunner=true"
ACTIVEMQ_ARGS="start xbean:activemq.xml"
ACTIVEMQ_OUT=$LOG
${jhome:+JAVA_HOME=$jhome}
EOF
  ln -sfn "$CONF" /etc/activemq/instances-enabled/$INSTANCE
}

pid_alive() {  # our broker's java process is alive
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q "activemq.base=$BASE"
}

stomp_ok() {  # a STOMP CONNECT gets CONNECTED
  python3 - "$STOMP_HOST" "$STOMP_PORT" <<'PY' 2>/dev/null
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0")
    sys.exit(0 if s.recv(4096).startswith(b"CONNECTED") else 1)
PY
}

smoke_test() {  # send + receive on a queue with stomp.py (a dependency of hepcat)
  python3 - "$STOMP_HOST" "$STOMP_PORT" <<'PY'
import os, queue, sys, stomp
got = queue.Queue()
class L(stomp.ConnectionListener):
    def on_message(self, frame): got.put(frame.body)
c = stomp.Connection([(sys.argv[1], int(sys.argv[2]))], heartbeats=(0, 0))
c.set_listener("", L())
c.connect(wait=True)
dest = f"/queue/hepcat.ci.smoke.{os.getpid()}"
c.subscribe(dest, id="1", ack="auto")
c.send(dest, "ping")
body = got.get(timeout=10)
c.disconnect()
sys.exit(0 if body == "ping" else 1)
PY
}

start() {
  if pid_alive; then
    say "already running (pid $(cat "$PIDFILE"))"
  elif stomp_ok; then
    say "something else already answers STOMP on $STOMP_HOST:$STOMP_PORT; using it"; return 0
  else
    write_config
    rm -f "$PIDFILE"
    say "starting instance $INSTANCE (log: $LOG)"
    # setsid + redirects: the broker must not hold the caller's terminal or pipes.
    INSTANCE=$INSTANCE ACTIVEMQ_USER=activemq ACTIVEMQ_HOME=/usr/share/activemq \
      ACTIVEMQ_BASE=$BASE ACTIVEMQ_CONF=$CONF ACTIVEMQ_DATA=$BASE/data ACTIVEMQ_TMP=$BASE/tmp \
      ACTIVEMQ_PIDFILE=$PIDFILE setsid /usr/bin/activemq start xbean:activemq.xml \
      </dev/null >>"$LOG" 2>&1 || die "launcher /usr/bin/activemq failed"
  fi
  local t0=$SECONDS
  until stomp_ok; do
    pid_alive || die "broker exited during start-up"
    ((SECONDS - t0 < START_TIMEOUT)) || die "no STOMP answer on $STOMP_HOST:$STOMP_PORT after ${START_TIMEOUT}s"
    sleep 0.5
  done
  smoke_test || die "STOMP smoke test (send/receive on a queue) failed"
  say "ready: stomp://$STOMP_HOST:$STOMP_PORT (pid $(cat "$PIDFILE"), waited $((SECONDS - t0))s)"
}

stop() {
  if ! pid_alive; then rm -f "$PIDFILE"; say "not running"; return 0; fi
  local pid t0=$SECONDS; pid=$(cat "$PIDFILE")
  kill -TERM "$pid"  # the broker's shutdown hook closes KahaDB cleanly
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - t0 >= STOP_TIMEOUT)); then say "no exit after ${STOP_TIMEOUT}s, SIGKILL"; kill -KILL "$pid"; fi
    sleep 0.2
  done
  rm -f "$PIDFILE"
  say "stopped (pid $pid, $((SECONDS - t0))s)"
}

status() {
  if pid_alive && stomp_ok; then say "running (pid $(cat "$PIDFILE")), STOMP on $STOMP_HOST:$STOMP_PORT"
  elif pid_alive; then say "process $(cat "$PIDFILE") alive, STOMP not answering"; return 1
  elif stomp_ok; then say "not started by this script, but STOMP answers on $STOMP_HOST:$STOMP_PORT"
  else say "not running"; return 3; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
