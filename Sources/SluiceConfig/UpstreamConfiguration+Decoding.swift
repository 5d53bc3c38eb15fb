extension GatewayConfiguration {
    static func decodeUpstream(_ reader: NodeReader, into upstream: inout UpstreamConfiguration) {
        guard let keys = reader.mapping(allowed: ["max_connections", "keepalive_idle", "protocol", "tls", "max_concurrent_streams"]) else { return }
        if let value = keys["max_connections"]?.int(in: 1...65_536) { upstream.maxConnections = value }
        if let value = keys["keepalive_idle"]?.duration() { upstream.keepaliveIdle = value }
        if let value = keys["max_concurrent_streams"]?.int(in: 1...10_000) { upstream.maxConcurrentStreams = value }
        if let node = keys["protocol"], let value = node.oneOf(UpstreamProtocol.allCases.map(\.rawValue)) {
            upstream.wire = UpstreamProtocol(rawValue: value) ?? .http1
        }
        if let node = keys["tls"], let entries = node.mapping(allowed: ["ca_file", "cert_file", "key_file", "server_name"]) {
            var tls = UpstreamTLSConfiguration()
            tls.caFile = entries["ca_file"]?.string()
            tls.certFile = entries["cert_file"]?.string()
            tls.keyFile = entries["key_file"]?.string()
            tls.serverName = entries["server_name"]?.string()
            if (tls.certFile == nil) != (tls.keyFile == nil) {
                node.report("cert_file and key_file go together (the gateway's client certificate and its key)")
            }
            if upstream.wire == .h2c {
                node.report("protocol h2c is HTTP/2 in cleartext; use protocol h2 for HTTP/2 over TLS")
            }
            upstream.tls = tls
        }
    }
}
