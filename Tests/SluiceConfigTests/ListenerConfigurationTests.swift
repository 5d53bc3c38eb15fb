import Testing
@testable import SluiceConfig

@Suite struct ListenerConfigurationTests {
    static func config(_ extra: String) -> String {
        ConfigValidationTests.valid + "\n" + extra
    }

    func issues(_ yaml: String) -> [String] {
        do {
            _ = try GatewayConfiguration.decode(yaml: yaml)
            return []
        } catch {
            return error.issues.map { "\($0.path): \($0.message)" }
        }
    }

    @Test func tlsAndHTTP2AreReadWithTheirDefaults() throws {
        let plain = try GatewayConfiguration.decode(yaml: ConfigValidationTests.valid)
        #expect(plain.tls == nil)
        #expect(plain.http2 == HTTP2Configuration())
        let yaml = Self.config("""
        tls: { cert_file: /etc/tls/tls.crt, key_file: /etc/tls/tls.key, client_ca_file: /etc/tls/ca.crt, reload_interval: 2s }
        http2: { max_concurrent_streams: 64, initial_window_size: 1MiB, max_header_list_size: 32KiB, max_resets: 50, reset_window: 10s }
        """)
        let config = try GatewayConfiguration.decode(yaml: yaml)
        #expect(config.tls?.certFile == "/etc/tls/tls.crt")
        #expect(config.tls?.keyFile == "/etc/tls/tls.key")
        #expect(config.tls?.clientCAFile == "/etc/tls/ca.crt")
        #expect(config.tls?.reloadInterval == .seconds(2))
        #expect(config.http2.maxConcurrentStreams == 64)
        #expect(config.http2.initialWindowSize == 1 << 20)
        #expect(config.http2.maxHeaderListSize == 32 * 1024)
        #expect(config.http2.maxResets == 50)
        #expect(config.http2.resetWindow == .seconds(10))
        #expect(config.http2.connectionWindowSize == 1 << 20)
    }

    @Test func badTLSAndHTTP2EntriesAreNamedByKeyPath() {
        let missing = issues(Self.config("tls: { cert_file: a.pem }"))
        #expect(missing.contains { $0.hasPrefix("tls:") && $0.contains("missing required key \"key_file\"") })
        let wrong = issues(Self.config("""
        tls: { cert_file: a.pem, key_file: a.key, reload_interval: 5ms, ca: x }
        http2: { max_concurrent_streams: 0, initial_window_size: 3GiB }
        """))
        #expect(wrong.contains { $0.hasPrefix("tls.reload_interval") && $0.contains("below 100ms") })
        #expect(wrong.contains { $0.hasPrefix("tls") && $0.contains("ca") })
        #expect(wrong.contains { $0.hasPrefix("http2.max_concurrent_streams") })
        #expect(wrong.contains { $0.hasPrefix("http2.initial_window_size") })
    }

    @Test func reloadRefusesNewTLSPathsAndHTTP2Settings() throws {
        let running = try GatewayConfiguration.decode(yaml: Self.config("tls: { cert_file: a.pem, key_file: a.key }"))
        let moved = try GatewayConfiguration.decode(yaml: Self.config("tls: { cert_file: b.pem, key_file: a.key }"))
        let streams = try GatewayConfiguration.decode(yaml: Self.config("tls: { cert_file: a.pem, key_file: a.key }\nhttp2: { max_concurrent_streams: 8 }"))
        guard case .failure(let error) = ReloadPlan.make(running: running, new: moved) else { Issue.record("tls change accepted"); return }
        #expect(error.issues.map(\.path) == ["tls"])
        guard case .failure(let error2) = ReloadPlan.make(running: running, new: streams) else { Issue.record("http2 change accepted"); return }
        #expect(error2.issues.map(\.path) == ["http2"])
        guard case .success = ReloadPlan.make(running: running, new: running) else { Issue.record("same config refused"); return }
    }

    @Test func aPoolsUpstreamProtocolAndTLSAreRead() throws {
        func pool(_ upstream: String) -> String {
            ConfigValidationTests.valid.replacingOccurrences(of: "    routing: { policy: round-robin }", with: "    routing: { policy: round-robin }\n    upstream: \(upstream)")
        }
        let config = try GatewayConfiguration.decode(yaml: pool("{ protocol: h2, max_concurrent_streams: 16, tls: { ca_file: ca.pem, cert_file: c.pem, key_file: c.key, server_name: model.internal } }"))
        #expect(config.pools[0].upstream.wire == .h2)
        #expect(config.pools[0].upstream.maxConcurrentStreams == 16)
        #expect(config.pools[0].upstream.tls == UpstreamTLSConfiguration(caFile: "ca.pem", certFile: "c.pem", keyFile: "c.key", serverName: "model.internal"))
        #expect(try GatewayConfiguration.decode(yaml: pool("{ protocol: h2c }")).pools[0].upstream.tls == nil)
        let wrong = issues(pool("{ protocol: h3, tls: { cert_file: c.pem } }"))
        #expect(wrong.contains { $0.hasPrefix("pools[0].upstream.protocol") && $0.contains("h3") })
        #expect(wrong.contains { $0.hasPrefix("pools[0].upstream.tls") && $0.contains("go together") })
        #expect(issues(pool("{ protocol: h2c, tls: { ca_file: ca.pem } }")).contains { $0.contains("use protocol h2") })
        // Active checks cannot reach a gRPC or TLS port: refused rather than a pool that never serves.
        let checked = pool("{ protocol: h2c }").replacingOccurrences(of: "    upstream:", with: "    health: { check: { path: /v2/health/ready } }\n    upstream:")
        #expect(issues(checked).contains { $0.hasPrefix("pools[0].health") && $0.contains("leave it out") })
    }
}
