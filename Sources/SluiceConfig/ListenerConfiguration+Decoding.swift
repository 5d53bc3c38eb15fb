extension GatewayConfiguration {
    static func decodeTLS(_ reader: NodeReader) -> ListenerTLSConfiguration? {
        guard let keys = reader.mapping(allowed: ["cert_file", "key_file", "client_ca_file", "reload_interval"]) else { return nil }
        func path(_ key: String) -> String? {
            guard let node = keys[key] else { return nil }
            guard let value = node.string() else { return nil }
            if value.isEmpty { node.report("an empty path") }
            return value.isEmpty ? nil : value
        }
        let cert = path("cert_file")
        let key = path("key_file")
        if keys["cert_file"] == nil { reader.report("missing required key \"cert_file\"") }
        if keys["key_file"] == nil { reader.report("missing required key \"key_file\"") }
        guard let cert, let key else { return nil }
        var tls = ListenerTLSConfiguration(certFile: cert, keyFile: key, clientCAFile: path("client_ca_file"))
        if let value = keys["reload_interval"]?.duration() {
            if value > .zero, value < .milliseconds(100) {
                keys["reload_interval"]?.report("below 100ms: use 0 to read the files only on reload")
            } else {
                tls.reloadInterval = value
            }
        }
        return tls
    }

    static func decodeHTTP2(_ reader: NodeReader) -> HTTP2Configuration {
        var http2 = HTTP2Configuration()
        guard let keys = reader.mapping(allowed: [
            "max_concurrent_streams", "initial_window_size", "connection_window_size", "max_header_list_size",
            "max_resets", "reset_window", "idle_timeout",
        ]) else { return http2 }
        if let value = keys["max_concurrent_streams"]?.int(in: 1...10_000) { http2.maxConcurrentStreams = value }
        // (RFC 9113: a window is at most 2^31-1; below 1 KiB every body crawls.)
        if let value = keys["initial_window_size"]?.byteSize(in: 1_024...Int(Int32.max)) { http2.initialWindowSize = value }
        if let value = keys["connection_window_size"]?.byteSize(in: 65_535...Int(Int32.max)) { http2.connectionWindowSize = value }
        if let value = keys["max_header_list_size"]?.byteSize(in: 1_024...(1 << 20)) { http2.maxHeaderListSize = value }
        if let value = keys["max_resets"]?.int(in: 1...1_000_000) { http2.maxResets = value }
        if let value = keys["reset_window"]?.duration(atLeast: .milliseconds(100)) { http2.resetWindow = value }
        if let value = keys["idle_timeout"]?.duration(atLeast: .milliseconds(100)) { http2.idleTimeout = value }
        return http2
    }
}
