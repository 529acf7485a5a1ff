# Sourced by the bench scripts: what they all use.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# gateway.toml of a bench gateway listening on port $1: sandbox with zero delay, quiet log.
bench_toml() {
  cat <<TOML
[server]
bind = "127.0.0.1:$1"
[storage]
data_dir = "data"
[log]
level = "warn"
[whatsapp.sandbox]
delay = "0ms"
outbox = "data/outbox.jsonl"
TOML
}
