#!/usr/bin/env bash
# Starts the Docker engine (dockerd) without systemd unless one already answers; waits until it does.
set -euo pipefail
log=/var/log/dockerd.log
pidfile=/var/run/docker.pid
conf=/etc/docker/daemon.json

if docker info >/dev/null 2>&1; then
  echo "docker engine: already running"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "start-engine.sh: must run as root to start dockerd" >&2; exit 1; }

pid=$(cat "$pidfile" 2>/dev/null || true)
if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
  echo "docker engine: dockerd (pid $pid) is starting, waiting for it"
else
  # A pid file naming no live dockerd makes the next one refuse: "pid file found, ensure docker is not running".
  [ -e "$pidfile" ] && { rm -f "$pidfile"; echo "docker engine: removed stale $pidfile"; }
  # live-restore: containers keep running while dockerd restarts (an upgrade, a crash), as on a production host.
  # Set in the daemon's config file, not as --live-restore: a flag cannot be changed by a reload (SIGHUP), and the
  # benchmark turns it off for its single-node Swarm run (Swarm refuses live-restore) and back on afterwards.
  # A "live-restore" the file already has is left as it is.
  mkdir -p "$(dirname "$conf")"
  node -e '
    const fs = require("node:fs");
    const f = process.argv[1];
    let c = {};
    try { c = JSON.parse(fs.readFileSync(f, "utf8")); } catch (e) { if (e.code !== "ENOENT") { console.error(`start-engine.sh: ${f} is not valid JSON: ${e.message}`); process.exit(1); } }
    if (!("live-restore" in c)) { c["live-restore"] = true; fs.writeFileSync(f, JSON.stringify(c, null, 2) + "\n"); console.log(`docker engine: live-restore set in ${f}`); }
  ' "$conf"
  # setsid -w: the background pid lives exactly as long as dockerd, whether or not setsid had to fork.
  setsid -w nohup dockerd --config-file "$conf" >>"$log" 2>&1 </dev/null &
  pid=$!
  echo "docker engine: started dockerd (pid $pid, log $log)"
fi

why="did not answer 'docker info' within 60 s"
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && { echo "docker engine: ready"; exit 0; }
  kill -0 "$pid" 2>/dev/null || { why="exited before it answered 'docker info'"; break; }
  sleep 1
done
echo "start-engine.sh: the Docker engine (dockerd) $why; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
