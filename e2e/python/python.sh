#!/usr/bin/env bash
# The Python Kafka client (kafka-python, pure Python) for the e2e tests, in a virtualenv cached under
# ~/.cache/fraudpipe/python so that only the first run reaches PyPI.
#   python.sh setup                     create the virtualenv
#   python.sh produce BROKERS TOPIC     send stdin's "key|value" lines with the client's default partitioner
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version=3.0.12
venv="${XDG_CACHE_HOME:-$HOME/.cache}/fraudpipe/python-kafka-$version"

setup() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import kafka' 2>/dev/null && return
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kafka-python==$version"
}

case "${1:-}" in
  setup) setup ;;
  produce) setup; "$venv/bin/python" "$here/produce.py" "$2" "$3" ;;
  *) echo "usage: $0 setup | produce BROKERS TOPIC" >&2; exit 2 ;;
esac
