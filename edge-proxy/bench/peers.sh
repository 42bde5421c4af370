# Shared by the edge-proxy benchmarks (sourced): a scratch directory removed on exit, and one
# nginx process serving the upstream, the OTLP receiver (it accepts and discards POSTs to
# /v1/traces) and the nginx reverse proxy, each on its own loopback port.
# edge_config NAME ADDRESS THREADS prints an edge-proxy configuration in front of them.

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

upstream=127.0.0.1:19001
receiver=127.0.0.1:19002
nginx_proxy=127.0.0.1:19003
edge_on=127.0.0.1:19004
edge_off=127.0.0.1:19005

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    upstream core { server $upstream; keepalive 128; }
    server { listen $upstream; location / { return 200 "core says hi\n"; } }
    server { listen $receiver; location /v1/traces { client_max_body_size 64m; return 200; } }
    server {
        listen $nginx_proxy;
        location / {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Request-Id \$request_id;
            proxy_pass http://core;
        }
    }
}
NGINX
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)

edge_config() { # name address threads
    cat <<TOML
[server]
threads = $3
upgrade_socket = "$work/$1.sock"
pid_file = "$work/$1.pid"
[listen]
http = ["$2"]
[admin]
address = ""
[access_log]
enabled = false
[sampling]
mode = "always_on"
[export]
endpoint = "http://$receiver"
[[upstreams.locations]]
name = "core"
address = "$upstream"
TOML
}
