#!/usr/bin/env bash
# Runs a command with a Redis server of its own on a free loopback port, named by PRNN_TEST_REDIS, for the tests
# of `prnn serve --state redis://...` (tests/serve.rs); stops the server when the command ends, however it ends.
# Installs redis-server from the OS packages (Debian's `redis-server`) the first time, when it is missing.
#   scripts/with-redis.sh cargo test --locked
set -euo pipefail

if ! command -v redis-server >/dev/null; then
    echo "with-redis: installing redis-server from the OS packages" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
        echo "with-redis: redis-server is missing and this user cannot install packages; install redis-server and run again" >&2
        exit 1
    fi
    $sudo apt-get install -y -qq redis-server >/dev/null || { $sudo apt-get update -qq && $sudo apt-get install -y -qq redis-server >/dev/null; }
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
folder=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$folder" --daemonize no >"$folder/redis.log" 2>&1 &
server=$!
stop() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$folder"
}
trap stop EXIT

for _ in $(seq 1 100); do
    if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ]; then break; fi
    if ! kill -0 "$server" 2>/dev/null; then
        echo "with-redis: redis-server did not start:" >&2
        cat "$folder/redis.log" >&2
        exit 1
    fi
    sleep 0.1
done
[ "$(redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ] || { echo "with-redis: redis-server does not answer on port $port" >&2; exit 1; }

echo "with-redis: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$port" >&2
export PRNN_TEST_REDIS="redis://127.0.0.1:$port"
status=0
"$@" || status=$?
exit "$status"
