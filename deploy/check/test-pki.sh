# Sourced by the deploy checks: make_test_pki DIR CA_NAME writes a throwaway CA (ca.pem) and a
# server certificate for xmpp.probe.test / probe.test signed by it (server.pem, server.key).
make_test_pki() {
    local dir="$1" ca_name="$2"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$ca_name" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=xmpp.probe.test" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:xmpp.probe.test,DNS:probe.test\n' > "$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
}
