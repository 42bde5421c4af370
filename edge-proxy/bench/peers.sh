# Shared by the edge-proxy benchmarks (sourced): a scratch directory removed on exit, and nginx
# serving the upstream, the OTLP receiver (it accepts and discards POSTs to /v1/traces) and the
# nginx reverse proxy, each on its own loopback port.
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
pingora_floor=127.0.0.1:19006

# The upstream and the receiver run in one nginx, the nginx reverse proxy in another. In one
# nginx process the proxy would serve its own upstream connections in the same event loop,
# without the process switch that every edge-proxy request pays; apart, both proxies pay it.
nginx_conf() { # name servers...
    local name=$1
    shift
    mkdir -p "$work/$name"
    cat >"$work/$name/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $work/$name/nginx.pid;
error_log $work/$name/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $work/$name/body;
    proxy_temp_path $work/$name/proxy;
    fastcgi_temp_path $work/$name/fastcgi;
    uwsgi_temp_path $work/$name/uwsgi;
    scgi_temp_path $work/$name/scgi;
$(printf "    %s\n" "$@")
}
NGINX
}
nginx_conf backends \
    "server { listen $upstream; location / { return 200 \"core says hi\n\"; } }" \
    "server { listen $receiver; location /v1/traces { client_max_body_size 64m; return 200; } }"
nginx_conf peer \
    "upstream core { server $upstream; keepalive 128; }" \
    "server { listen $nginx_proxy; location / { proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header X-Request-Id \$request_id; proxy_pass http://core; } }"
for name in backends peer; do
    nginx -c "$work/$name/nginx.conf" -p "$work/$name" &
    pids+=($!)
done

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
