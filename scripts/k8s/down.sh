#!/usr/bin/env bash
# Stops what up.sh started in DIR (and a test kubelet's pid file there), by PID.
dir=$1
pids=""
for name in kubelet scheduler kcm apiserver etcd; do
  if [ -f "$dir/$name.pid" ]; then
    pid=$(cat "$dir/$name.pid")
    for child in $(pgrep -P "$pid" 2>/dev/null); do kill "$child" 2>/dev/null; done
    kill "$pid" 2>/dev/null && pids="$pids $pid"
    rm -f "$dir/$name.pid"
  fi
done
for _ in $(seq 1 100); do
  alive=""
  for pid in $pids; do [ -d "/proc/$pid" ] && alive="$alive $pid"; done
  [ -z "$alive" ] && exit 0
  sleep 0.1
done
kill -9 $alive 2>/dev/null
exit 0
