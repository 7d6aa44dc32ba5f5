#!/bin/sh
# Entrypoint of the `timescaledb` compose service: TLS with the PKI's server
# certificate, then the image's own entrypoint.
#
# PostgreSQL refuses a server key that is not owned by its own user with mode 0600 (or
# root-owned 0640), and the files of the shared PKI volume belong to the notip user
# (uid 10001). So, as root (the image starts as root and drops to `postgres` in its
# own entrypoint), copy certificate and key to a directory of the container owned by
# postgres, and start the server with
#   - ssl=on and those files,
#   - a pg_hba.conf that accepts TCP connections only over TLS (scram-sha-256);
#     the Unix socket inside the container stays trusted, as in the stock image
#     (pg_isready and the image's init scripts use it).
# Applied on every start, so a renewed certificate is picked up by a restart.
set -eu

: "${NOTIP_PG_TLS_CERT:?path of the server certificate}"
: "${NOTIP_PG_TLS_KEY:?path of the server key}"

tls_dir=/var/lib/postgresql/tls
install -d -o postgres -g postgres -m 0700 "$tls_dir"
install -o postgres -g postgres -m 0644 "$NOTIP_PG_TLS_CERT" "$tls_dir/server.crt"
install -o postgres -g postgres -m 0600 "$NOTIP_PG_TLS_KEY" "$tls_dir/server.key"
cat > "$tls_dir/pg_hba.conf" <<'EOF'
# TYPE    DATABASE  USER  ADDRESS    METHOD
local     all       all              trust
hostssl   all       all   0.0.0.0/0  scram-sha-256
hostssl   all       all   ::/0       scram-sha-256
EOF
chown postgres:postgres "$tls_dir/pg_hba.conf"
chmod 0600 "$tls_dir/pg_hba.conf"

if [ "$#" -eq 0 ]; then
  set -- postgres
fi
if [ "$1" = postgres ]; then
  shift
  set -- postgres "$@" \
    -c ssl=on \
    -c "ssl_cert_file=$tls_dir/server.crt" \
    -c "ssl_key_file=$tls_dir/server.key" \
    -c "hba_file=$tls_dir/pg_hba.conf"
fi
exec docker-entrypoint.sh "$@"
